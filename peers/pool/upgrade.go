package pool

import (
	"errors"
	"time"
)

// DefaultDirectRetry is how often a peer served only through another
// member (reverse or relay) is dialed directly again, in case an address
// of it started to work (a router mapping that came up, a fixed
// firewall). A new advert from the peer (other addresses, reachable now)
// tries at once.
const DefaultDirectRetry = time.Minute

var errRetired = errors.New("replaced by a direct connection")

// isDirect reports whether c reaches its peer at one of its addresses,
// not through another member.
func (c *conn) isDirect() bool { return c.g.pool.routeName(c.addr) == "direct" }

// maybeUpgradeLocked starts a direct dial in the background when best,
// the connection a request is about to use, goes through another member
// and the peer has addresses that were not tried lately. The direct
// connection, once up, takes the new requests; the others finish theirs
// and close (retire).
func (g *group) maybeUpgradeLocked(best *conn) {
	if best.isDirect() || g.upgrading || len(g.peer.Addrs) == 0 || time.Now().Before(g.nextUpgrade) {
		return
	}
	g.upgrading = true
	peer := g.peer.Clone()
	go func() {
		c, addr, err := g.pool.dial(peer, peer.Addrs, g)
		g.mu.Lock()
		g.upgrading = false
		if err != nil {
			g.nextUpgrade = time.Now().Add(g.pool.opts.DirectRetry)
			g.mu.Unlock()
			g.pool.log.Debug("peer still not reachable directly", "peer", peerLabel(peer), "err", err)
			return
		}
		closed := g.pool.isClosed()
		c.lastUsed = time.Now()
		g.good = addr
		var idle []*conn
		for _, o := range g.conns {
			if !o.isDirect() {
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
		g.pool.log.Info("peer reachable directly now; new requests go direct", "peer", peerLabel(peer), "addr", addr, "route", "direct")
		for _, o := range idle {
			o.kill(errRetired)
		}
		g.watch(c)
	}()
}
