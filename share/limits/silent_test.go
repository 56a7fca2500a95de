//go:build linux

package limits

import (
	"io"
	"net"
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

// closedByGate reports whether c's other side was closed within a few
// seconds.
func closedByGate(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}

// TestSilentGiveWay: a source at its limit of connections logging in at
// once gets a new one in by closing its oldest silent one; one whose
// version line waits unread in the kernel is not silent; once none is
// silent, the new one is refused. The dropped one's slot is not freed
// twice.
func TestSilentGiveWay(t *testing.T) {
	g := newGate(t, Options{MaxStartupsPerSource: 3})
	server, client := loopbackPairs(t, 6)
	src := SourceOf(server[0].RemoteAddr())
	now := time.Now()
	sts := make([]*Startup, 5)
	for i := range 3 {
		var err error
		if sts[i], err = g.Admit(src, server[i], now); err != nil {
			t.Fatalf("connection %d refused below the limit: %v", i, err)
		}
	}
	// The second one sent its version line; nobody has read it yet.
	if _, err := client[1].Write([]byte("SSH-2.0-friend\r\n")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the version line to arrive", func() bool { return versionQueued(server[1]) })

	var err error
	if sts[3], err = g.Admit(src, server[3], now); err != nil {
		t.Fatalf("a new connection was refused with a silent one to drop: %v", err)
	}
	if !closedByGate(client[0]) {
		t.Error("the oldest silent connection was not closed")
	}
	if sts[4], err = g.Admit(src, server[4], now); err != nil {
		t.Fatalf("refused: %v", err)
	}
	if !sts[2].dropped || sts[1].dropped {
		t.Errorf("dropped: second %v, third %v; want the third (silent), not the second (sent its version line)", sts[1].dropped, sts[2].dropped)
	}
	// None silent left: the newcomer is refused.
	sts[3].Hello()
	sts[4].Hello()
	if _, err := g.Admit(src, server[5], now); err != ErrSourceLogins {
		t.Errorf("with no silent connection to drop: %v; want %v", err, ErrSourceLogins)
	}
	// The dropped ones' handlers end: their slots were passed on.
	for _, i := range []int{0, 2} {
		if !sts[i].Leave() {
			t.Errorf("leave of dropped connection %d did not say so", i)
		}
	}
	if n, perSrc := g.counts(src); n != 3 || perSrc != 3 {
		t.Errorf("after drops: %d logging in, %d from the source; want 3 and 3", n, perSrc)
	}
	for _, i := range []int{1, 3, 4} {
		if sts[i].Leave() {
			t.Errorf("connection %d said dropped", i)
		}
	}
	g.mu.Lock()
	lists := len(g.srcList)
	g.mu.Unlock()
	if n, _ := g.counts(src); n != 0 || lists != 0 {
		t.Errorf("all gone: %d logging in, %d source lists; want 0 and 0", n, lists)
	}
}

// TestStreamsNeverGiveWay: a connection admitted without a TCP connection
// (a relayed stream) is never dropped for a newer one.
func TestStreamsNeverGiveWay(t *testing.T) {
	g := newGate(t, Options{MaxStartupsPerSource: 1})
	src := MemberSource("SHA256:holder", "")
	st, err := g.Admit(src, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(src, nil, time.Now()); err != ErrSourceLogins {
		t.Errorf("second stream from a full source: %v; want %v", err, ErrSourceLogins)
	}
	if st.Leave() {
		t.Error("a stream said it was dropped")
	}
}
