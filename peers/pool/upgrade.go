package pool

import (
	"errors"
	"slices"
	"time"

	"github.com/dsftp/dsftp/peers/route"
)

// DefaultDirectRetry is how often a peer served only through another
// member (reverse or relay) is dialed directly again, in case an address
// of it started to work (a router mapping that came up, a fixed
// firewall). A new advert from the peer (other addresses, reachable now)
// tries at once.
const DefaultDirectRetry = time.Minute

var errRetired = errors.New("replaced by a better route")

// maybeUpgradeLocked starts a better dial in the background when best,
// the connection a request is about to use, is not direct: directly, when
// the peer has addresses that were not tried lately; over a punched QUIC
// path, when best goes through another member and the peer has UDP
// candidates (not tried lately either); through a member's relay, when
// best goes through a TURN server (not tried lately either); over the
// peer's reverse connection, when best is a relay or TURN and we hold one
// now (it came up after that route was chosen). The better connection, once
// up, takes the new requests; the worse ones finish theirs and close
// (retire).
func (g *group) maybeUpgradeLocked(best *conn) {
	rank := route.Rank(best.addr)
	if rank == route.RankDirect || g.upgrading {
		return
	}
	var addrs []string
	if !time.Now().Before(g.nextUpgrade) {
		addrs = slices.Clone(g.peer.Addrs)
		if rank > route.RankPunched && g.pool.punchable(g.peer) {
			addrs = append(addrs, route.Punched)
		}
		if rank == route.RankTURN {
			addrs = append(addrs, g.pool.relays(g.peer)...)
		}
	}
	toReverse := rank >= route.RankRelay && g.pool.opts.Routes != nil && g.pool.opts.Routes.Has(g.peer.ID)
	if toReverse {
		addrs = append(slices.Clone(addrs), route.Reverse)
	}
	if len(addrs) == 0 {
		return
	}
	g.upgrading = true
	peer := g.peer.Clone()
	go func() {
		c, addr, err := g.pool.dial(peer, addrs, g)
		g.mu.Lock()
		g.upgrading = false
		if err != nil {
			g.nextUpgrade = time.Now().Add(g.pool.opts.DirectRetry)
			g.mu.Unlock()
			g.pool.log.Debug("peer still not reachable by a better route", "peer", peerLabel(peer), "err", err)
			return
		}
		closed := g.pool.isClosed()
		c.lastUsed = time.Now()
		better := route.Rank(addr)
		if better == route.RankDirect {
			g.good = addr
		}
		var idle []*conn
		for _, o := range g.conns {
			if route.Rank(o.addr) > better {
				o.retiring.Store(true)
				if o.inflight == 0 {
					idle = append(idle, o)
				}
			}
		}
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		if closed {
			c.kill(errPoolClosed)
			return
		}
		switch better {
		case route.RankDirect:
			g.pool.log.Info("peer reachable directly now; new requests go direct", "peer", peerLabel(peer), "addr", addr, "route", "direct")
		case route.RankPunched:
			g.pool.log.Info("peer reachable over a punched QUIC path now; new requests go there", "peer", peerLabel(peer), "route", "punched")
		case route.RankRelay:
			g.pool.log.Info("peer reachable through a member's relay now; new requests go there, not through the TURN server", "peer", peerLabel(peer), "route", g.pool.routeName(addr))
		default:
			g.pool.log.Info("peer reachable over its reverse connection now; new requests go there, not through a relay", "peer", peerLabel(peer), "route", "reverse")
		}
		for _, o := range idle {
			o.kill(errRetired)
		}
		g.watch(c)
	}()
}
