package instance

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share/reach"
)

// The UDP candidates of the share's own addresses. A public IPv6 address
// (peers.PublicIPv6) needs no STUN and no NAT: members anywhere send to it
// directly, and a stateful firewall in front of it lets in the packets
// that answer the share's own, which punching provides. Unique local IPv6
// (fc00::/7) goes with private IPv4 among the local candidates, which the
// advert drops first, and so do global ones when the host has no IPv6
// route to the internet; link-local IPv6 is never advertised (it needs a
// zone). Every public IPv6 address goes, temporary (privacy) ones too,
// since Go cannot tell them apart and the punch's packets leave from the
// one the kernel picks, usually the newest temporary address: a member's
// packets get through the firewall only to that one. It goes first, so
// it is the last the advert drops.

// refreshCandidates is how often the share's addresses are read again:
// temporary IPv6 addresses come and go (daily, by default on Linux), and a
// laptop moves between networks.
const refreshCandidates = time.Minute

// sourceProbe is a global IPv6 address (Google's public DNS) whose route
// tells which of our addresses the kernel sends from (RFC 6724 source
// selection). Connecting a UDP socket sends nothing.
var sourceProbe = netip.MustParseAddrPort("[2001:4860:4860::8888]:53")

// ownCandidates lists the share's addresses with the UDP port: the public
// IPv6 ones (the kernel's preferred source first) and the local ones
// (private IPv4, unique local IPv6, loopback). Without a preferred source
// (no IPv6 route to the internet) no address counts as public IPv6.
func ownCandidates(addrs []netip.AddrPort, port uint16, preferred netip.Addr) (global, local []netip.AddrPort) {
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Addr().Unmap(), port)
		if ap.Addr().IsLinkLocalUnicast() {
			continue
		}
		if preferred.IsValid() && peers.PublicIPv6(ap.Addr()) {
			global = append(global, ap)
		} else {
			local = append(local, ap)
		}
	}
	slices.SortStableFunc(global, func(a, b netip.AddrPort) int {
		switch {
		case a.Addr() == b.Addr():
			return 0
		case a.Addr() == preferred:
			return -1
		case b.Addr() == preferred:
			return 1
		}
		return 0
	})
	return slices.Compact(global), slices.Compact(local)
}

// preferredSource is the IPv6 address the kernel sends from towards the
// internet, or the zero Addr without an IPv6 route there (a global
// address is then of no use to members elsewhere).
func preferredSource() netip.Addr {
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(sourceProbe))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
}

// readCandidates reads the share's addresses now.
func (in *Instance) readCandidates(port uint16) (global, local []netip.AddrPort) {
	return ownCandidates(reach.Local(in.Share.Addrs()), port, preferredSource())
}

// watchCandidates re-reads the share's addresses every refreshCandidates
// and re-advertises the UDP candidates when they changed.
func (in *Instance) watchCandidates(port uint16) {
	t := time.NewTicker(refreshCandidates)
	defer t.Stop()
	for {
		select {
		case <-in.ctx.Done():
			return
		case <-t.C:
		}
		global, local := in.readCandidates(port)
		changed := false
		in.updateUDP(func(u *udpCandidates) {
			changed = !slices.Equal(u.global, global) || !slices.Equal(u.local, local)
			u.global, u.local = global, local
		})
		if !changed {
			continue
		}
		in.log.Info("the share's UDP candidates changed", "public_ipv6", global, "local", local)
		in.publishUDP()
		if in.paths != nil {
			in.paths.ownChanged()
		}
	}
}

// updateUDP changes the UDP candidates with f, which may run more than
// once when two changes race.
func (in *Instance) updateUDP(f func(*udpCandidates)) {
	for {
		old := in.udp.Load()
		u := *old
		f(&u)
		if in.udp.CompareAndSwap(old, &u) {
			return
		}
	}
}

// ownIPv6 reports whether the share has a public IPv6 candidate: with a
// member that has one too, punching needs neither STUN nor a NAT that
// allows it.
func (in *Instance) ownIPv6() bool {
	u := in.udp.Load()
	return u != nil && len(u.global) > 0
}
