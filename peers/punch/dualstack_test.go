package punch

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// listenDual opens an endpoint on the IPv6 wildcard, which takes IPv4 too.
func listenDual(t *testing.T, id string) *Endpoint {
	t.Helper()
	e, err := Listen("[::]:0", Config{ID: id, HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// One dual-stack socket punches over IPv6, dials over IPv4, and asks STUN
// over IPv4 when the server has an IPv4 address, over IPv6 when it has
// only that; an IPv4 socket cannot ask an IPv6 server.
func TestDualStack(t *testing.T) {
	a, b := listenDual(t, "A"), listenDual(t, "B")
	ctx := testCtx(t, 15*time.Second)
	v6 := func(e *Endpoint) netip.AddrPort { return netip.AddrPortFrom(netip.IPv6Loopback(), e.Addr().Port()) }
	v4 := func(e *Endpoint) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), e.Addr().Port())
	}

	var pa, pb *Path
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { pa, ea = a.Punch(ctx, "B", []netip.AddrPort{v6(b)}) })
	wg.Go(func() { pb, eb = b.Punch(ctx, "A", []netip.AddrPort{v6(a)}) })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("punch over IPv6: A: %v; B: %v", ea, eb)
	}
	if got := pa.RemoteAddr(); got != v6(b) {
		t.Errorf("A's path goes to %v; want %v", got, v6(b))
	}
	if got := pb.RemoteAddr(); got != v6(a) {
		t.Errorf("B's path comes from %v; want %v", got, v6(a))
	}
	p4, err := a.Dial(ctx, v4(b), "B")
	if err != nil {
		t.Fatalf("dial over IPv4 from the dual-stack socket: %v", err)
	}
	if got := p4.RemoteAddr(); got != v4(b) {
		t.Errorf("the IPv4 path goes to %v; want %v (unmapped)", got, v4(b))
	}
	p4.Close()

	s4, s6 := stunServer(t, 0), stunServerAt(t, net.IPv6loopback, 0)
	for _, m := range a.Discover(ctx, []string{s4, s6}) {
		want := v4(a)
		if m.Server == s6 {
			want = v6(a)
		}
		if m.Err != nil || m.Public != want {
			t.Errorf("STUN %s: public %v, %v; want %v", m.Server, m.Public, m.Err, want)
		}
	}
	only4 := newEndpoint(t, "C", Config{})
	if m := only4.Discover(ctx, []string{s6})[0]; m.Err == nil {
		t.Errorf("an IPv4 socket asked the IPv6 STUN server %s: %v", s6, m.Public)
	}
}
