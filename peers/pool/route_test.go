package pool

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/route"
)

type noPuncher struct{}

func (noPuncher) PunchStream(context.Context, peers.Peer) (net.Conn, error) {
	return nil, errors.New("not in this test")
}

// A peer is tried over a punched path when its advert says what STUN told
// it of its NAT, or when it has a public IPv6 candidate, which needs no
// STUN; a unique local or link-local one does not count.
func TestPunchable(t *testing.T) {
	p := &Pool{opts: Options{Punch: noPuncher{}}}
	for _, c := range []struct {
		peer peers.Peer
		want bool
	}{
		{peers.Peer{UDP: []string{"198.51.100.7:2200"}, NAT: "cone"}, true},
		{peers.Peer{UDP: []string{"192.168.1.5:2200"}}, false},
		{peers.Peer{UDP: []string{"192.168.1.5:2200", "[2001:db8:1::5]:2200"}}, true},
		{peers.Peer{UDP: []string{"[fd00::5]:2200", "[fe80::5]:2200"}}, false},
		{peers.Peer{NAT: "cone"}, false},
	} {
		got := p.punchable(c.peer)
		if got != c.want {
			t.Errorf("punchable(udp %q, nat %q) = %v; want %v", c.peer.UDP, c.peer.NAT, got, c.want)
		}
		if routes := p.routeAddrs(c.peer, nil); (len(routes) == 1 && routes[0] == route.Punched) != c.want {
			t.Errorf("routes for udp %q, nat %q: %q", c.peer.UDP, c.peer.NAT, routes)
		}
	}
}
