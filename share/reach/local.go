package reach

import (
	"net"
	"net/netip"
	"slices"
)

// Bound is the address a share bound: its first TCP listener, or the zero
// AddrPort when it has none.
func Bound(listeners []net.Addr) netip.AddrPort {
	for _, a := range listeners {
		if ta, ok := a.(*net.TCPAddr); ok {
			return ta.AddrPort()
		}
	}
	return netip.AddrPort{}
}

// Local returns the addresses clients on this machine or network can dial
// a share listening on listeners at: the bound address, or for a wildcard
// listener every address of the machine's interfaces (non-loopback first,
// IPv4 before IPv6, link-local IPv6 left out since it needs a zone).
// Sorted, for stable output. With several listeners the last one counts
// (for ":PORT", the IPv6 wildcard, which takes IPv4 too).
func Local(listeners []net.Addr) []netip.AddrPort {
	var bound netip.AddrPort
	for _, a := range listeners {
		if ta, ok := a.(*net.TCPAddr); ok {
			bound = ta.AddrPort()
		}
	}
	if !bound.IsValid() {
		return nil
	}
	ip := bound.Addr().Unmap()
	if !ip.IsUnspecified() {
		return []netip.AddrPort{netip.AddrPortFrom(ip, bound.Port())}
	}
	v4only := ip.Is4()
	ifaddrs, _ := net.InterfaceAddrs()
	var out []netip.AddrPort
	for _, ia := range ifaddrs {
		pfx, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		a := pfx.Addr().Unmap()
		if a.IsLinkLocalUnicast() || a.IsMulticast() || (v4only && !a.Is4()) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, bound.Port()))
	}
	rank := func(a netip.Addr) int {
		r := 0
		if a.IsLoopback() {
			r += 2
		}
		if !a.Is4() {
			r++
		}
		return r
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int {
		if d := rank(a.Addr()) - rank(b.Addr()); d != 0 {
			return d
		}
		return a.Addr().Compare(b.Addr())
	})
	return slices.Compact(out)
}
