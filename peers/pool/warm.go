package pool

import (
	"slices"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
)

// DefaultWarmPeers is how many peers may hold connections before Warm
// stops dialing new ones.
const DefaultWarmPeers = 32

// warmer connects to peers ahead of their first request, from one
// goroutine, so that Warm never blocks and a burst of joins (a channel
// full of peers at start) costs at most WarmPeers dials.
type warmer struct {
	once sync.Once
	mu   sync.Mutex
	want []peers.Peer // most recent first, at most WarmPeers
	wake chan struct{}
	done chan struct{} // closed by Pool.Close
}

// Warm connects to peer in the background, so that its first request (a
// listing, most often) finds the SSH handshake done: about seven round
// trips saved. Each call asks for one dial at most: none when the peer
// already has a connection or a dial under way, or is in its backoff after
// a failed dial. The most recently warmed peers go first, and only while
// fewer than Options.WarmPeers peers hold connections: those are the ones
// in use (connections nobody uses close after IdleTimeout, as every idle
// connection does), so a peer nobody reads takes no slot of theirs. It
// never blocks on the network.
func (p *Pool) Warm(peer peers.Peer) {
	if p.opts.WarmPeers < 0 || peer.ID == "" || peer.ID == p.opts.SelfID {
		return
	}
	w := &p.warm
	w.once.Do(func() { go p.warmLoop() })
	w.mu.Lock()
	w.want = slices.DeleteFunc(w.want, func(o peers.Peer) bool { return o.ID == peer.ID })
	w.want = slices.Insert(w.want, 0, peer)
	if len(w.want) > p.opts.WarmPeers {
		clear(w.want[p.opts.WarmPeers:])
		w.want = w.want[:p.opts.WarmPeers]
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// warmLoop dials the peers Warm asked for until the pool closes.
func (p *Pool) warmLoop() {
	w := &p.warm
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		want := w.want
		w.want = nil
		w.mu.Unlock()
		slots := p.opts.WarmPeers - p.connectedPeers()
		for _, peer := range want {
			if slots <= 0 {
				p.log.Debug("not connecting ahead: enough peers connected", "peer", peerLabel(peer), "limit", p.opts.WarmPeers)
				continue
			}
			if p.warmOne(peer) {
				slots--
			}
		}
	}
}

// connectedPeers counts the peers with a live connection or a dial under
// way.
func (p *Pool) connectedPeers() int {
	p.mu.Lock()
	// A group's lock is never taken under the pool's (startDialLocked
	// takes them the other way round), so the count runs on a copy.
	groups := make([]*group, 0, len(p.groups))
	for _, g := range p.groups {
		groups = append(groups, g)
	}
	p.mu.Unlock()
	n := 0
	for _, g := range groups {
		g.mu.Lock()
		if g.hasConnLocked() || g.dialing != nil {
			n++
		}
		g.mu.Unlock()
	}
	return n
}

// warmOne starts a dial to peer unless it needs none; it reports whether
// it did.
func (p *Pool) warmOne(peer peers.Peer) bool {
	g, err := p.group(peer)
	if err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hasConnLocked() || g.dialing != nil || time.Now().Before(g.nextDial) {
		return false
	}
	g.peer = peer
	p.log.Debug("connecting ahead of the first request", "peer", peerLabel(peer))
	g.startDialAheadLocked(true)
	return true
}

func (g *group) hasConnLocked() bool {
	for _, c := range g.conns {
		if !c.dead.Load() {
			return true
		}
	}
	return false
}
