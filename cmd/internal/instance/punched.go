package instance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/peers/route"
)

// Punched paths (route "punched"): QUIC connections from the share's UDP
// endpoint to members behind NAT. Both members punch as soon as each sees
// the other's advert with UDP candidates (or when its own public address
// changes), so no message is needed to start at the same time; the pool
// opens its SSH connections as streams on the path (pool.Puncher).

const (
	// punchTimeout bounds one punch: long enough for the other member to
	// read our advert (posted up to a few seconds after its history was
	// read) and start its own.
	punchTimeout = 20 * time.Second
	// maxPaths bounds the paths kept at once; beyond it the least
	// recently used is closed.
	maxPaths = 32
	// maxPunching bounds the punches started in the background at once
	// (a read waits for none).
	maxPunching = 4
	// repunchMax caps the backoff before punching again a path that
	// closed while the peer is live.
	repunchMax = time.Minute
)

// paths holds the punched paths by peer ID, or the paths through TURN
// relays (turn.go): kind says which.
type paths struct {
	in   *Instance
	kind pathKind
	log  *slog.Logger
	sem  chan struct{}
	poke chan struct{}

	mu sync.Mutex
	m  map[string]*pathEntry
}

// pathEntry is one peer's path, or the punch under way, or how the last
// one failed.
type pathEntry struct {
	done  chan struct{} // closed when the punch ends
	path  *punch.Path   // nil while punching or after a failure
	err   error
	key   string // what was punched: the peer's run and candidates, our NAT
	used  time.Time
	tries int // punches in a row that failed or closed
	retry time.Time
}

// pathKind is what tells punched paths from paths through a TURN relay.
type pathKind struct {
	// route names the paths in logs and errors ("punched", "turn").
	route string
	// wanted reports whether a path to p is worth keeping up before any
	// read needs it: the peer punches at the same time from the same
	// adverts.
	wanted func(p peers.Peer) bool
	// check says why no path to p can be had at all, or nil.
	check func(p peers.Peer) error
	// plan picks the endpoint to punch from and the candidates to punch.
	plan func(p peers.Peer) (*punch.Endpoint, []netip.AddrPort, error)
	// hint says what would help when a punch failed.
	hint func(p peers.Peer) string
}

func newPaths(in *Instance, kind pathKind) *paths {
	return &paths{in: in, kind: kind, log: in.log, sem: make(chan struct{}, maxPunching),
		poke: make(chan struct{}, 1), m: map[string]*pathEntry{}}
}

// punchKind is the punched route: from the share's endpoint to the
// peer's UDP candidates.
func (in *Instance) punchKind() pathKind {
	return pathKind{
		route:  route.Punched,
		wanted: in.punchWanted,
		check: func(p peers.Peer) error {
			if in.bothIPv6(p) {
				return nil
			}
			self, peer := in.selfNAT(), punch.NAT(p.NAT)
			if why := hopeless(self, peer); why != "" {
				return fmt.Errorf("punch: %w: %s", punch.ErrNoPath, why)
			}
			if self == "" {
				return fmt.Errorf("punch: %w: this member does not know its public UDP address (no STUN server answered, or --stun none) and one of the two has no public IPv6 address", punch.ErrNoPath)
			}
			return nil
		},
		plan: func(p peers.Peer) (*punch.Endpoint, []netip.AddrPort, error) {
			return in.quic, candidates(p.UDP), nil
		},
		hint: func(p peers.Peer) string {
			if in.bothIPv6(p) {
				return "the firewalls dropped the punched packets, over IPv6 too: open a port on one of them (let UDP or TCP to the share's port in)"
			}
			return punch.Hint(in.selfNAT(), punch.NAT(p.NAT))
		},
	}
}

// startPunching punches to members as their adverts arrive, and closes
// the path to a member that left.
func (in *Instance) startPunching() {
	if in.quic == nil || in.Pool == nil {
		return
	}
	in.g.Go(func() error { in.paths.run(in.ctx); return nil })
	if in.turns != nil {
		in.g.Go(func() error { in.turns.run(in.ctx); return nil })
	}
}

// punchOptions gives the pool the punched route.
func (in *Instance) punchOptions(po *pool.Options) {
	if in.quic == nil {
		return
	}
	in.paths = newPaths(in, in.punchKind())
	po.Punch = in.paths
	in.turnOptions(po)
}

func (ps *paths) run(ctx context.Context) {
	ch, stop := ps.in.Registry.Watch()
	defer stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		ps.scan(ctx)
		select {
		case <-ctx.Done():
			ps.closeAll()
			return
		case <-ch:
		case <-ps.poke:
		case <-tick.C: // retries after a backoff
		}
	}
}

// ownChanged re-scans after our public address or NAT type changed: the
// members see our new advert and punch again, so we do too.
func (ps *paths) ownChanged() {
	select {
	case ps.poke <- struct{}{}:
	default:
	}
}

// scan starts punches to the members that want one and closes the paths
// of members that left.
func (ps *paths) scan(ctx context.Context) {
	live := map[string]peers.Peer{}
	for _, e := range ps.in.Registry.List() {
		live[e.ID] = e.Peer
	}
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for id, e := range ps.m {
		if _, ok := live[id]; !ok {
			if e.path != nil {
				e.path.Close()
			}
			delete(ps.m, id)
			ps.log.Debug("closed the punched path of a member that left", "peer", id)
		}
	}
	for id, p := range live {
		if !ps.kind.wanted(p) {
			continue
		}
		e := ps.m[id]
		switch {
		case e == nil:
		case e.path != nil || !isClosed(e.done):
			continue // up, or punching
		case e.key != ps.key(p):
			e.tries = 0 // something changed: at once
		case now.Before(e.retry):
			continue
		}
		ps.startLocked(ctx, p, true)
	}
}

// punchWanted reports whether a punched path to p is worth having: one
// side cannot be dialed, and either both have a public IPv6 address (no
// NAT between them, stateful firewalls at most) or both learnt their
// public address and not both are behind NATs that defeat punching.
func (in *Instance) punchWanted(p peers.Peer) bool {
	if p.ClientOnly || len(p.UDP) == 0 || (!p.Unreachable && in.reachable.Load()) {
		return false
	}
	if in.bothIPv6(p) {
		return true
	}
	self, peer := in.selfNAT(), punch.NAT(p.NAT)
	if self == "" || peer == "" {
		return false // no STUN on one side: no public candidate
	}
	return hopeless(self, peer) == ""
}

// hopeless says why punching between these NATs cannot work, or "".
func hopeless(self, peer punch.NAT) string {
	switch {
	case self == punch.NATSymmetric && peer != punch.NATNone, peer == punch.NATSymmetric && self != punch.NATNone:
		return punch.Hint(self, peer)
	}
	return ""
}

// bothIPv6 reports whether both members have a public IPv6 candidate:
// then IPv4 NATs, and STUN, do not matter.
func (in *Instance) bothIPv6(p peers.Peer) bool {
	return in.ownIPv6() && peers.HasPublicIPv6(p.UDP)
}

func (ps *paths) key(p peers.Peer) string {
	u := ps.in.udp.Load()
	return fmt.Sprint(p.Instance, p.UDP, p.Relay, ps.in.selfNAT(), u.public, u.global, ps.in.relayAddr())
}

// failing reports whether the last punches to the peer with this ID
// failed, at least twice in a row.
func (ps *paths) failing(id string) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e := ps.m[id]
	return e != nil && e.path == nil && isClosed(e.done) && e.tries >= 2
}

// startLocked starts a punch to p; background punches wait for a slot.
func (ps *paths) startLocked(ctx context.Context, p peers.Peer, background bool) *pathEntry {
	old := ps.m[p.ID]
	e := &pathEntry{done: make(chan struct{}), key: ps.key(p), used: time.Now()}
	if old != nil {
		e.tries = old.tries
	}
	ps.m[p.ID] = e
	ps.evictLocked()
	go func() {
		if background {
			select {
			case ps.sem <- struct{}{}:
				defer func() { <-ps.sem }()
			case <-ctx.Done():
				ps.finish(p, e, nil, ctx.Err())
				return
			}
		}
		ep, cands, err := ps.kind.plan(p)
		if err != nil {
			ps.finish(p, e, nil, err)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, punchTimeout)
		defer cancel()
		start := time.Now()
		path, err := ep.Punch(pctx, p.ID, cands)
		switch {
		case err != nil:
		case ps.kind.route == route.TURN:
			ps.log.Info("opened a QUIC path through a TURN relay to a member", "peer", p.ID, "remote", path.RemoteAddr(),
				"took", time.Since(start).Round(time.Millisecond), "local", ep.Addr())
		default:
			ps.log.Info("punched a QUIC path to a member", "peer", p.ID, "remote", path.RemoteAddr(),
				"took", time.Since(start).Round(time.Millisecond))
		}
		ps.finish(p, e, path, err)
	}()
	return e
}

// finish records how a punch ended; a path that closes while the member
// is live is punched again after a backoff (the member sees it close too
// and does the same).
func (ps *paths) finish(p peers.Peer, e *pathEntry, path *punch.Path, err error) {
	ps.mu.Lock()
	current := ps.m[p.ID] == e
	switch {
	case err != nil:
		e.err = err
		e.tries++
		e.retry = time.Now().Add(min(time.Second<<min(e.tries, 6), repunchMax))
	case !current:
		path.Close() // the member left, or was evicted, meanwhile
	default:
		e.path = path
	}
	close(e.done)
	ps.mu.Unlock()
	if err != nil {
		ps.log.Debug("punch failed", "peer", p.ID, "route", ps.kind.route, "err", err)
		return
	}
	if !current {
		return
	}
	go func() {
		<-path.Done()
		ps.mu.Lock()
		if ps.m[p.ID] == e {
			e.path = nil
			e.err = fmt.Errorf("the %s path closed", ps.kind.route)
			e.tries++
			e.retry = time.Now().Add(min(time.Second<<min(e.tries-1, 6), repunchMax))
		}
		ps.mu.Unlock()
		ps.ownChanged()
	}()
}

// evictLocked closes the least recently used paths beyond maxPaths.
func (ps *paths) evictLocked() {
	for len(ps.m) > maxPaths {
		var lru string
		for id, e := range ps.m {
			if lru == "" || e.used.Before(ps.m[lru].used) {
				lru = id
			}
		}
		if e := ps.m[lru]; e.path != nil {
			e.path.Close()
		}
		delete(ps.m, lru)
	}
}

func (ps *paths) closeAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for id, e := range ps.m {
		if e.path != nil {
			e.path.Close()
		}
		delete(ps.m, id)
	}
}

// PunchStream opens a stream to peer's share over its path (punched, or
// through a TURN relay), punching first (with whatever the peer does at
// the same time) when none is up; the error says why no path exists and
// what would help.
func (ps *paths) PunchStream(ctx context.Context, p peers.Peer) (net.Conn, error) {
	if err := ps.kind.check(p); err != nil {
		return nil, err
	}
	ps.mu.Lock()
	e := ps.m[p.ID]
	if e == nil || (e.path == nil && isClosed(e.done)) {
		e = ps.startLocked(ps.in.ctx, p, false)
	}
	e.used = time.Now()
	ps.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("punch: %w", ctx.Err())
	}
	ps.mu.Lock()
	path, err := e.path, e.err
	ps.mu.Unlock()
	if path == nil {
		if err == nil {
			err = punch.ErrNoPath
		}
		return nil, fmt.Errorf("%w; %s", err, ps.kind.hint(p))
	}
	return path.OpenStream(ctx)
}

// candidates parses the advert's candidates (Decode checked the form).
func candidates(udp []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range udp {
		if a, err := netip.ParseAddrPort(s); err == nil && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
