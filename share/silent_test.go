//go:build linux

package share

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// closedByServer reports whether the server closed c's other side within
// a few seconds (what it sent before, its version line, is read past).
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSilencePenalty: silent connections from an address cost it a
// penalty that locks it out, unless a login from it succeeded recently
// (a friend behind the same address as the attacker).
func TestSilencePenalty(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.VersionGrace = 300 * time.Millisecond })
	const friend, stranger = "127.0.0.3", "127.0.0.4"
	c, err := ts.dialFrom(t, friend)
	if err != nil {
		t.Fatalf("login from %s: %v", friend, err)
	}
	c.Close()
	for _, addr := range []string{friend, stranger} {
		for range 2 { // 2 × 10 s: past the 15 s that block a source
			s, err := dialFromAddr(addr, ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			// Cut after the version grace.
			if !closedByServer(s) {
				t.Errorf("silent connection from %s not cut", addr)
			}
			s.Close()
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the stranger to be penalised", func() bool {
		return strings.Contains(ts.logs.String(), "address penalised") && strings.Contains(ts.logs.String(), "source="+stranger)
	})
	if c, err := ts.dialFrom(t, friend); err != nil {
		t.Errorf("login from %s after its silent connections: %v", friend, err)
	} else {
		c.Close()
	}
	if c, err := ts.dialFrom(t, stranger); err == nil {
		c.Close()
		t.Errorf("login from the penalised %s succeeded", stranger)
	}
	if !strings.Contains(ts.logs.String(), `penalty="none: a login from this address succeeded recently"`) {
		t.Error("the friend's silent connections were not logged as uncharged")
	}
}
