package instance

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/share/reach"
)

// The share's UDP path (peers/punch): one QUIC endpoint on the TCP
// listener's port number, whose streams the share serves like TCP
// connections, whose public address STUN learns, and from which the pool
// punches paths to members (punched.go).

// firstSTUNWait is how long the bring-up waits for the first STUN answer,
// so that the first advert already carries the public UDP address: a
// later change re-posts only after discord.DefaultMinRepost, and members
// punch only once they know it.
const firstSTUNWait = 2 * time.Second

// udpCandidates is what the adverts say of the UDP path (candidates.go).
type udpCandidates struct {
	global []netip.AddrPort // the share's public IPv6 addresses, UDP port
	local  []netip.AddrPort // its other addresses, UDP port
	public netip.AddrPort   // as STUN saw it; invalid until known
	nat    punch.NAT        // "" without STUN
}

// strings lists the candidates best first: the public address, the public
// IPv6 ones, then the local ones (useful only on the same network, where
// TCP works too; the advert drops them first when it runs out of room).
func (u *udpCandidates) strings() []string {
	var out []string
	if u.public.IsValid() {
		out = append(out, u.public.String())
	}
	for _, l := range slices.Concat(u.global, u.local) {
		if l != u.public {
			out = append(out, l.String())
		}
	}
	return out
}

// startQUIC opens the UDP endpoint and serves its streams with the share.
// A UDP port that cannot be had is one warning: TCP works as before. Only
// with Discord: LAN adverts carry no UDP candidates (members of one LAN
// dial each other's TCP address), so a LAN-only run asks no STUN server.
func (in *Instance) startQUIC() {
	r := in.cfg.Reach
	if r == nil || r.NoQUIC || in.Share == nil || in.cfg.Discord == nil {
		return
	}
	bound := reach.Bound(in.Share.Addrs())
	port := uint16(r.UDPPort)
	if port == 0 {
		port = bound.Port()
	}
	addr := netip.AddrPortFrom(bound.Addr(), port)
	ep, err := punch.Listen(addr.String(), punch.Config{ID: in.self.id(), Logger: in.log,
		Member: in.udpMember, Refuse: in.Share.Penalised})
	if err != nil {
		fmt.Fprintf(in.cfg.Err, "dsftp: warning: %v; members behind NAT cannot punch through to this share (TCP works as before; --udp-port picks another port, --no-quic turns UDP off)\n", err)
		return
	}
	in.quic = ep
	udpPort := ep.Addr().Port()
	global, local := in.readCandidates(udpPort)
	in.udp.Store(&udpCandidates{global: global, local: local})
	in.log.Info("share listening on UDP (QUIC)", "addr", ep.Addr(), "stun", r.STUN, "public_ipv6", global)
	in.g.Go(func() error {
		<-in.ctx.Done()
		return ep.Close()
	})
	in.g.Go(in.serveQUIC)
	in.g.Go(func() error { in.watchCandidates(udpPort); return nil })
	if len(r.STUN) == 0 {
		return
	}
	first := make(chan struct{})
	in.g.Go(func() error {
		ep.WatchPublic(in.ctx, r.STUN, func(pub netip.AddrPort, nat punch.NAT) {
			in.setPublicUDP(pub, nat)
			select {
			case <-first:
			default:
				close(first)
			}
		})
		return nil
	})
	select {
	case <-first:
	case <-time.After(firstSTUNWait):
		in.log.Info("no STUN answer yet; advertising the UDP path without its public address for now", "stun", r.STUN)
	}
}

// udpMember tells whether source src (punch.Source: an IPv4 address, an
// IPv6 /64) holds one of a live member's UDP candidates: the endpoint
// keeps part of its handshake and connection slots for those, whatever
// strangers hold. A member's IPv6 candidates count by their /64, as its
// packets may leave from another of its addresses there.
func (in *Instance) udpMember(src netip.Addr) bool {
	for _, e := range in.Registry.List() {
		for _, c := range e.UDP {
			if a, err := netip.ParseAddrPort(c); err == nil && punch.Source(a.Addr()) == src {
				return true
			}
		}
	}
	return false
}

// serveQUIC hands every stream a peer opens to the share, which serves it
// like a TCP connection from the stream's UDP source address; a stream
// from a member's address has a pre-login budget of its own.
func (in *Instance) serveQUIC() error {
	for {
		c, err := in.quic.Accept(in.ctx)
		if err != nil {
			return nil
		}
		go func() {
			if in.udpMember(punch.Source(addrOf(c.RemoteAddr()))) {
				_ = in.Share.ServeMemberStream(c)
				return
			}
			_ = in.Share.ServeStream(c, "", "")
		}()
	}
}

// addrOf is a UDP address's IP, IPv4-mapped IPv6 unmapped.
func addrOf(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// setPublicUDP records what STUN learnt and re-advertises it.
func (in *Instance) setPublicUDP(pub netip.AddrPort, nat punch.NAT) {
	in.updateUDP(func(u *udpCandidates) { u.public, u.nat = pub, nat })
	in.log.Info("public UDP address", "addr", pub, "nat", nat)
	in.publishUDP()
	if in.paths != nil {
		in.paths.ownChanged()
	}
}

// publishUDP puts the UDP candidates into the next advert; the advert is
// re-posted only when they changed.
func (in *Instance) publishUDP() {
	u := in.udp.Load()
	if u == nil {
		return
	}
	if d := in.discord.Load(); d != nil {
		d.SetUDP(u.strings(), string(u.nat))
	}
}

// selfNAT is what STUN said of our router ("" without STUN).
func (in *Instance) selfNAT() punch.NAT {
	if u := in.udp.Load(); u != nil {
		return u.nat
	}
	return ""
}
