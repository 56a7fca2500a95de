package reach

import (
	"net"
	"net/netip"
	"slices"
	"testing"
)

// A wildcard listener is reachable on loopback; a specific one only at
// its own address.
func TestLocal(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	got := Local([]net.Addr{l.Addr()})
	if !slices.Contains(got, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)) {
		t.Errorf("Local(%v) = %v, lacks 127.0.0.1:%d", l.Addr(), got, port)
	}
	if i := slices.IndexFunc(got, func(a netip.AddrPort) bool { return a.Addr().IsLoopback() }); i >= 0 {
		for _, a := range got[i:] {
			if !a.Addr().IsLoopback() {
				t.Errorf("Local = %v: %v after a loopback address, want loopback last", got, a)
			}
		}
	}
	lo := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:2200"))
	if got, want := Local([]net.Addr{lo}), []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:2200")}; !slices.Equal(got, want) {
		t.Errorf("Local(127.0.0.1:2200) = %v, want %v", got, want)
	}
	if got := Bound([]net.Addr{lo}); got != netip.MustParseAddrPort("127.0.0.1:2200") {
		t.Errorf("Bound = %v", got)
	}
	if got := Local(nil); got != nil {
		t.Errorf("Local(nil) = %v, want none", got)
	}
}
