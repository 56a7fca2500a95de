package punch

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func newEndpoint(t testing.TB, id string, c Config) *Endpoint {
	t.Helper()
	c.ID = id
	e, err := Listen("127.0.0.1:0", c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A stream is a net.Conn both ways, with the peers' UDP addresses.
func TestStreamIsNetConn(t *testing.T) {
	a, b := newEndpoint(t, "A", Config{}), newEndpoint(t, "B", Config{})
	ctx := testCtx(t, 10*time.Second)
	p, err := b.Dial(ctx, a.Addr(), "A")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := p.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	s, err := a.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrPort(s.RemoteAddr()); got != b.Addr() {
		t.Errorf("accepted stream's remote address %v, want the dialer's socket %v", got, b.Addr())
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// Closing one end ends the other's reads.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(buf); err == nil {
		t.Fatal("read after the peer closed the stream succeeded")
	}
}

// A dial addressed to another member is refused at the TLS handshake, as
// is a dial without our ALPN.
func TestHandshakeRefusals(t *testing.T) {
	a, b := newEndpoint(t, "A", Config{}), newEndpoint(t, "B", Config{})
	ctx := testCtx(t, 10*time.Second)
	if _, err := b.Dial(ctx, a.Addr(), "C"); err == nil {
		t.Fatal("a dial addressed to C was accepted by A")
	}
	bad := clientTLS("B", "A")
	bad.NextProtos = []string{"h3"}
	if _, err := b.tr.Dial(ctx, net.UDPAddrFromAddrPort(a.Addr()), bad, b.dialCfg); err == nil {
		t.Fatal("a dial with ALPN h3 was accepted")
	}
	if _, err := b.Dial(ctx, a.Addr(), "A"); err != nil {
		t.Fatalf("the right dial after the refusals: %v", err)
	}
}

// recordConn notes the long-header packet types a socket receives.
type recordConn struct {
	net.PacketConn
	mu    sync.Mutex
	types []byte
}

func (r *recordConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := r.PacketConn.ReadFrom(b)
	if n > 0 && b[0]&0x80 != 0 {
		r.mu.Lock()
		r.types = append(r.types, b[0]&0x30>>4)
		r.mu.Unlock()
	}
	return n, a, err
}

// The listener answers a first Initial with a Retry: a source must prove
// it receives at its address before a handshake costs the listener state.
func TestRetryOn(t *testing.T) {
	a := newEndpoint(t, "A", Config{})
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordConn{PacketConn: uc}
	tr := &quic.Transport{Conn: rec}
	defer tr.Close()
	ctx := testCtx(t, 10*time.Second)
	c, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(a.Addr()), clientTLS("B", "A"), &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c.CloseWithError(0, "")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	const retry = 3 // long header type of a Retry in QUIC v1
	if len(rec.types) == 0 || rec.types[0] != retry {
		t.Fatalf("long-header packet types received %v; want a Retry (3) first", rec.types)
	}
}

// Both sides punch at once: each gets a path, the same connection (the one
// A, the smaller ID, dialed), and streams go both ways on it.
func TestPunchLoopback(t *testing.T) {
	// B's own dial, cancelled once A's arrived, leaves a handshake at A
	// that ends at the timeout.
	fast := Config{HandshakeTimeout: 2 * time.Second}
	a, b := newEndpoint(t, "A", fast), newEndpoint(t, "B", fast)
	ctx := testCtx(t, 15*time.Second)
	var pa, pb *Path
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { pa, ea = a.Punch(ctx, "B", []netip.AddrPort{b.Addr()}) })
	wg.Go(func() { pb, eb = b.Punch(ctx, "A", []netip.AddrPort{a.Addr()}) })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("punch: A: %v; B: %v", ea, eb)
	}
	if !pa.Dialed || pb.Dialed {
		t.Errorf("A's path dialed=%v, B's dialed=%v; want both on the connection A dialed", pa.Dialed, pb.Dialed)
	}
	for _, dir := range []struct {
		from *Path
		to   *Endpoint
	}{{pa, b}, {pb, a}} {
		c, err := dir.from.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		s, err := dir.to.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Conns+b.Stats().Conns != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if a.Stats().Conns+b.Stats().Conns != 1 {
		t.Errorf("incoming connections A %+v, B %+v; want one in all (B's own dial closed)", a.Stats(), b.Stats())
	}
}

// A punch that meets nobody fails with ErrNoPath when its context ends.
func TestPunchNobody(t *testing.T) {
	a := newEndpoint(t, "A", Config{})
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx := testCtx(t, 1500*time.Millisecond)
	_, err = a.Punch(ctx, "B", []netip.AddrPort{addrPort(silent.LocalAddr())})
	if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), silent.LocalAddr().String()) {
		t.Fatalf("punch to a silent socket: %v; want ErrNoPath naming the candidate", err)
	}
}

// A flood of handshakes from one source that never finish holds at most
// MaxHandshakesPerSource slots; the rest are refused, and a member from
// another address still connects.
func TestHandshakeFlood(t *testing.T) {
	a := newEndpoint(t, "A", Config{MaxHandshakesPerSource: 4, MaxHandshakes: 8, HandshakeTimeout: 5 * time.Second})
	stall := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stall)
	ctx := testCtx(t, 20*time.Second)
	const flood = 40
	for range flood {
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: uc}
		t.Cleanup(func() { tr.Close() })
		conf := clientTLS("X", "A")
		// The handshake stops where the client checks the certificate:
		// the listener waits for a Finished that never comes.
		conf.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error { <-stall; return errors.New("stalled") }
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
			defer cancel()
			if c, err := tr.Dial(dctx, net.UDPAddrFromAddrPort(a.Addr()), conf, &quic.Config{}); err == nil {
				c.CloseWithError(0, "")
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Refused < flood-4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := a.Stats()
	t.Logf("after %d stalled handshakes from 127.0.0.1: %+v", flood, st)
	if st.Handshakes > 4 || st.Refused < flood-4 {
		t.Fatalf("stats %+v; want at most 4 handshakes held and %d refused", st, flood-4)
	}
	b, err := Listen("127.0.0.2:0", Config{ID: "B"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Dial(ctx, a.Addr(), "A")
	if err != nil {
		t.Fatalf("a member from another address during the flood: %v", err)
	}
	p.Close()
}
