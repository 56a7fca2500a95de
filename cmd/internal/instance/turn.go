package instance

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/peers/route"
)

// Paths through TURN relays (route "turn"): the last resort between two
// members that can neither dial nor punch each other. A member with
// --turn allocates a relayed address and advertises it (advert: relay);
// the pair uses the relay of one of them (ours when the peer has none or
// our ID is the smaller): the relay's holder punches the peer's public
// UDP candidates from the relay's QUIC endpoint, which creates the TURN
// permissions for the peer's address, while the peer punches the relayed
// address from its share's endpoint. Whichever handshake completes is the
// path, as with punching; SSH inside checks the host key, so the TURN
// server carries only ciphertext.

const (
	// firstRelayWait is how long the bring-up waits for the allocation,
	// so that the first advert already carries the relayed address.
	firstRelayWait = 3 * time.Second
	// reallocEvery is the least time between two allocations: each new
	// relayed address re-posts the advert, and this keeps those re-posts
	// to at most 10 an hour; a server that refused is asked again as
	// seldom.
	reallocEvery = 6 * time.Minute
)

// turnOptions gives the pool the TURN route: every member with a UDP
// endpoint can dial a peer's relayed address; only one with --turn also
// holds a relay.
func (in *Instance) turnOptions(po *pool.Options) {
	in.turns = newPaths(in, in.turnKind())
	po.TURN = in.turns
}

func (in *Instance) turnKind() pathKind {
	return pathKind{
		route:  route.TURN,
		wanted: in.turnWanted,
		check: func(p peers.Peer) error {
			_, _, err := in.turnPlan(p)
			return err
		},
		plan: in.turnPlan,
		hint: func(peers.Peer) string {
			return "the TURN relay passed nothing between the two members: the TURN server may refuse their addresses as peers (coturn: denied-peer-ip), or a firewall blocks its relay ports (UDP)"
		},
	}
}

// TURNable reports whether the pool may try the TURN route to p: neither
// side can be dialed, and a relay on either side serves the pair.
func (ps *paths) TURNable(p peers.Peer) bool {
	if p.ClientOnly || (!p.Unreachable && ps.in.reachable.Load()) {
		return false
	}
	return ps.kind.check(p) == nil
}

// turnWanted reports whether a path through a relay to p is worth keeping
// up before any read: the pair can use one, has no IPv6 path to punch,
// and punching cannot work
// (the NATs defeat it, one side knows no public address) or failed twice.
// Both members decide the same from the same adverts, so both punch.
func (in *Instance) turnWanted(p peers.Peer) bool {
	if !in.turns.TURNable(p) || in.bothIPv6(p) {
		return false
	}
	self, peer := in.selfNAT(), punch.NAT(p.NAT)
	return self == "" || peer == "" || hopeless(self, peer) != "" || in.paths.failing(p.ID)
}

// turnPlan picks the relay for the pair and what to punch through it.
func (in *Instance) turnPlan(p peers.Peer) (*punch.Endpoint, []netip.AddrPort, error) {
	own := in.relay.Load()
	theirs, _ := netip.ParseAddrPort(p.Relay)
	switch {
	case own != nil && (!theirs.IsValid() || in.self.id() < p.ID):
		cands := publicCandidates(p.UDP)
		if len(cands) == 0 {
			return nil, nil, fmt.Errorf("turn: %w: the peer advertises no public UDP address for our TURN relay to let in (no STUN server answered it, or it runs with --stun none)", punch.ErrNoPath)
		}
		return own.Endpoint, cands, nil
	case theirs.IsValid() && in.quic != nil:
		return in.quic, []netip.AddrPort{theirs}, nil
	case in.cfg.Reach != nil && len(in.cfg.Reach.TURN) > 0:
		return nil, nil, fmt.Errorf("turn: %w: our TURN server granted no relay (see the warning at start) and the peer has none", punch.ErrNoPath)
	}
	return nil, nil, fmt.Errorf("turn: %w: neither member has a TURN relay (--turn)", punch.ErrNoPath)
}

// publicCandidates are the candidates our relay can reach: IPv4 (pion
// allocates IPv4 relayed addresses, and a TURN server relays within one
// family), and not private, loopback or link-local (the peer's own
// network's).
func publicCandidates(udp []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range candidates(udp) {
		a := c.Addr().Unmap()
		if a.Is4() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified() {
			out = append(out, netip.AddrPortFrom(a, c.Port()))
		}
	}
	return out
}

// relayAddr is our relayed address as adverts carry it ("" without one).
func (in *Instance) relayAddr() string {
	if r := in.relay.Load(); r != nil {
		return r.Addr().String()
	}
	return ""
}

// publishRelay puts the relayed address into the next advert; the advert
// is re-posted only when it changed.
func (in *Instance) publishRelay() {
	if d := in.discord.Load(); d != nil {
		d.SetRelay(in.relayAddr())
	}
}

// startTURN allocates a relayed address on the --turn servers and keeps
// one while the instance runs; the bring-up waits firstRelayWait for the
// first. A server that cannot be reached or refuses is one warning: every
// other route works as before.
func (in *Instance) startTURN() {
	r := in.cfg.Reach
	if r == nil || len(r.TURN) == 0 {
		return
	}
	if in.quic == nil || in.turns == nil {
		// The relay's holder must punch the members through it, which
		// only a process that reads them (mount, shell) does.
		fmt.Fprintf(in.cfg.Err, "dsftp: warning: --turn works with dsftp mount, with Discord and QUIC on; it is ignored here\n")
		return
	}
	first := make(chan struct{})
	in.g.Go(func() error { in.keepRelay(r.TURN, first); return nil })
	select {
	case <-first:
	case <-time.After(firstRelayWait):
		in.log.Info("no TURN relay yet; advertising without it for now", "turn", r.TURN)
	}
}

// keepRelay holds a relay until the instance stops: it allocates, serves
// the relay's streams with the share, and allocates anew when pion could
// not refresh the allocation, at most every reallocEvery, so the relayed
// address in the advert changes (one re-post) at most that often. first
// is closed after the first attempt.
func (in *Instance) keepRelay(servers []punch.TURNServer, first chan struct{}) {
	warned := false
	var last time.Time
	for {
		if wait := time.Until(last.Add(reallocEvery)); !last.IsZero() && wait > 0 {
			select {
			case <-in.ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		r, err := punch.ListenRelay(in.ctx, servers, punch.Config{ID: in.self.id(), Logger: in.log})
		if err == nil {
			in.useRelay(r) // before first: the first advert carries it
		}
		if first != nil {
			close(first)
			first = nil
		}
		if err != nil {
			if in.ctx.Err() != nil {
				return
			}
			in.publishRelay() // no relay now, if one was advertised
			if !warned {
				fmt.Fprintf(in.cfg.Err, "dsftp: warning: %v; members that can neither dial nor punch this one cannot reach it (asking again every %v); everything else works\n", err, reallocEvery)
				warned = true
			}
			in.log.Warn("no TURN relay", "err", err, "retry_in", reallocEvery)
			continue
		}
		warned = false
		select {
		case <-in.ctx.Done():
		case <-r.Lost():
			in.log.Warn("the TURN server forgot our allocation; allocating anew", "turn", r.Server, "relayed", r.Addr())
		}
		// The advert keeps the old address until the next allocation
		// replaces it (or fails): one re-post per allocation.
		in.relay.Store(nil)
		r.Close()
		if in.ctx.Err() != nil {
			return
		}
	}
}

// useRelay advertises r, serves the streams peers open on it and punches
// through it to the members that want it.
func (in *Instance) useRelay(r *punch.Relay) {
	in.relay.Store(r)
	fmt.Fprintf(in.cfg.Err, "dsftp: TURN relay %s on %s: members that can neither dial nor punch this one reach it through there\n", r.Addr(), r.Server)
	in.publishRelay()
	in.g.Go(func() error {
		for {
			c, err := r.Accept(in.ctx)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && in.ctx.Err() == nil {
					in.log.Debug("TURN relay stopped accepting", "err", err)
				}
				return nil
			}
			go func() { _ = in.Share.ServeStream(c, "", "") }()
		}
	})
	if in.turns != nil {
		in.turns.ownChanged()
	}
}
