package punch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// NAT is what the STUN answers tell about the router in front of the
// socket.
type NAT string

const (
	// NATUnknown: fewer than two servers answered.
	NATUnknown NAT = "unknown"
	// NATNone: the public address is the socket's own.
	NATNone NAT = "none"
	// NATCone: every server saw the same public address (endpoint-
	// independent mapping): a peer that sends to it reaches the mapping
	// that our own packets to that peer opened.
	NATCone NAT = "cone"
	// NATSymmetric: each server saw another port (a new mapping per
	// destination): the address STUN learnt is not the one a peer would
	// meet, so punching to it fails unless the peer is reachable itself.
	NATSymmetric NAT = "symmetric"
)

// Classify reads the NAT type from the answers of different servers.
func Classify(local netip.AddrPort, ms []Mapping) NAT {
	var seen []netip.AddrPort
	for _, m := range ms {
		if m.Err == nil {
			seen = append(seen, m.Public)
		}
	}
	if len(seen) == 0 {
		return NATUnknown
	}
	for _, s := range seen[1:] {
		if s != seen[0] {
			return NATSymmetric
		}
	}
	if seen[0].Port() == local.Port() && isLocalIP(seen[0].Addr()) {
		return NATNone
	}
	if len(seen) < 2 {
		return NATUnknown
	}
	return NATCone
}

func isLocalIP(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}

// PublicAddr is the first answer among ms, or an error that says why none
// came.
func PublicAddr(ms []Mapping) (netip.AddrPort, error) {
	var errs []string
	for _, m := range ms {
		if m.Err == nil {
			return m.Public, nil
		}
		errs = append(errs, m.Err.Error())
	}
	if len(errs) == 0 {
		return netip.AddrPort{}, errors.New("no STUN server configured")
	}
	return netip.AddrPort{}, fmt.Errorf("no STUN server answered: %s", strings.Join(errs, "; "))
}

// Hint says what would let two members whose punch failed reach each
// other, from what STUN told each about its NAT: a TURN server (--turn)
// on either side, or an open port on one.
func Hint(self, peer NAT) string {
	const help = ": add --turn (a TURN server) on either, or open a port on one of them (a port forward on the router)"
	switch {
	case self == NATSymmetric && peer == NATSymmetric:
		return "symmetric NAT on both sides" + help
	case self == NATSymmetric || peer == NATSymmetric:
		return "symmetric NAT on one side" + help
	default:
		return "the routers dropped the punched packets" + help
	}
}

// WatchPublic asks the servers now and every KeepAlive, which also keeps
// the socket's mapping towards them open, and calls onChange with the
// public address and NAT type whenever either changes (or a first answer
// comes). It returns when ctx ends.
func (e *Endpoint) WatchPublic(ctx context.Context, servers []string, onChange func(netip.AddrPort, NAT)) {
	var last netip.AddrPort
	var lastNAT NAT
	t := time.NewTicker(KeepAlive)
	defer t.Stop()
	for {
		ms := e.Discover(ctx, servers)
		if pub, err := PublicAddr(ms); err != nil {
			e.log.Debug("STUN found no public address", "err", err)
		} else if nat := Classify(e.Addr(), ms); pub != last || nat != lastNAT {
			last, lastNAT = pub, nat
			onChange(pub, nat)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}
