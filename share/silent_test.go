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

// loopbackPairs opens n TCP connections over loopback and returns the
// accepted (server) sides and the client sides.
func loopbackPairs(t *testing.T, n int) (server, client []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		server, client = append(server, s), append(client, c)
	}
	return server, client
}

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

// TestSilentGiveWay: a source at its limit of connections logging in at
// once gets a new one in by closing its oldest silent one; one whose
// version line waits unread in the kernel is not silent; once none is
// silent, the new one is refused. The dropped one's slot is not freed
// twice.
func TestSilentGiveWay(t *testing.T) {
	opts := &Options{MaxStartups: DefaultStartups, MaxStartupsPerSource: 3, PenaltyMax: DefaultPenaltyMax}
	g := newGate(opts)
	server, client := loopbackPairs(t, 7)
	src := sourceOf(server[0].RemoteAddr())
	sts := make([]*startup, len(server))
	for i, c := range server {
		sts[i] = &startup{src: src, conn: c}
	}
	now := time.Now()
	for i := range 3 {
		if r := g.admitConn(sts[i], now); r != "" {
			t.Fatalf("connection %d refused below the limit: %s", i, r)
		}
	}
	// The second one sent its version line; nobody has read it yet.
	if _, err := client[1].Write([]byte("SSH-2.0-friend\r\n")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the version line to arrive", func() bool { return versionQueued(server[1]) })

	if r := g.admitConn(sts[3], now); r != "" {
		t.Fatalf("a new connection was refused with a silent one to drop: %s", r)
	}
	if !closedByServer(client[0]) {
		t.Error("the oldest silent connection was not closed")
	}
	if r := g.admitConn(sts[4], now); r != "" {
		t.Fatalf("refused: %s", r)
	}
	if !sts[2].dropped || sts[1].dropped {
		t.Errorf("dropped: second %v, third %v; want the third (silent), not the second (sent its version line)", sts[1].dropped, sts[2].dropped)
	}
	// None silent left: the newcomer is refused.
	sts[3].hello.Store(true)
	sts[4].hello.Store(true)
	if r := g.admitConn(sts[5], now); r != refuseSourceLogin {
		t.Errorf("with no silent connection to drop: %q; want %q", r, refuseSourceLogin)
	}
	// The dropped ones' handlers end: their slots were passed on.
	for _, i := range []int{0, 2} {
		if !g.leave(sts[i]) {
			t.Errorf("leave of dropped connection %d did not say so", i)
		}
	}
	g.mu.Lock()
	startups, perSrc := g.startups, g.srcStart[src]
	g.mu.Unlock()
	if startups != 3 || perSrc != 3 {
		t.Errorf("after drops: %d logging in, %d from the source; want 3 and 3", startups, perSrc)
	}
	for _, i := range []int{1, 3, 4} {
		if g.leave(sts[i]) {
			t.Errorf("connection %d said dropped", i)
		}
	}
	g.mu.Lock()
	startups, lists := g.startups, len(g.srcList)
	g.mu.Unlock()
	if startups != 0 || lists != 0 {
		t.Errorf("all gone: %d logging in, %d source lists; want 0 and 0", startups, lists)
	}
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
