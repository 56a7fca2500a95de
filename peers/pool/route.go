package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/route"
	"golang.org/x/crypto/ssh"
)

// The pool's side of the routes through other members (peers/route):
// the reverse and relay pseudo-addresses it dials beside a peer's
// addresses, and what it tells of the route a connection took.

// Puncher opens one stream, carrying one SSH connection to the peer's
// share, over a QUIC path punched to the peer's UDP candidates (punching
// one first when none is up). The instance wires it to the share's UDP
// endpoint (peers/punch); the SSH handshake inside checks the peer's host
// key as on every route.
type Puncher interface {
	PunchStream(ctx context.Context, peer peers.Peer) (net.Conn, error)
}

// TURNer opens one stream, carrying one SSH connection to the peer's
// share, over a QUIC path through a TURN server's relayed address: ours,
// punched to the peer's UDP candidates, or the peer's, dialed from our
// endpoint. The SSH handshake inside checks the peer's host key as on
// every route, so the TURN server carries only ciphertext.
type TURNer interface {
	Puncher
	// TURNable reports whether a relay on either side can serve peer.
	TURNable(peer peers.Peer) bool
}

func (p *Pool) turnable(peer peers.Peer) bool {
	return p.opts.TURN != nil && p.opts.TURN.TURNable(peer)
}

// punchable reports whether the pool can try a punched route to peer:
// its advert has UDP candidates and says what STUN told it of its NAT
// (without STUN it has no public candidate, and on its own network TCP
// works), or has a public IPv6 candidate (no NAT to learn about).
func (p *Pool) punchable(peer peers.Peer) bool {
	return p.opts.Punch != nil && len(peer.UDP) > 0 && (peer.NAT != "" || peers.HasPublicIPv6(peer.UDP))
}

// routeAddrs adds the punched, reverse, relay and TURN routes to a peer's
// addresses, best first: punched when its advert has UDP candidates,
// reverse when we hold its reverse connection, relay through each member
// its advert says holds one, TURN when a relay on either side serves it.
func (p *Pool) routeAddrs(peer peers.Peer, addrs []string) []string {
	out := slices.Clone(addrs)
	if p.punchable(peer) {
		out = append(out, route.Punched)
	}
	if p.opts.Routes != nil && p.opts.Routes.Has(peer.ID) {
		out = append(out, route.Reverse)
	}
	out = append(out, p.relays(peer)...)
	if p.turnable(peer) {
		out = append(out, route.TURN)
	}
	return out
}

// relays are the relay routes through each member peer's advert says
// holds its reverse connection (not us, and not the peer itself).
func (p *Pool) relays(peer peers.Peer) []string {
	var out []string
	if p.opts.Routes == nil || p.opts.NoRelay {
		return out
	}
	for _, v := range peer.Via {
		if v != peer.ID && v != p.opts.SelfID {
			out = append(out, route.RelayVia(v))
		}
	}
	return out
}

// dialStream connects to one address or route of peer.
func (p *Pool) dialStream(ctx context.Context, peer peers.Peer, addr string) (net.Conn, error) {
	if addr == route.Reverse {
		if p.opts.Routes == nil {
			return nil, errors.New("no reverse routes")
		}
		return p.opts.Routes.Open(peer.ID)
	}
	if addr == route.Punched {
		if p.opts.Punch == nil {
			return nil, errors.New("no punched routes")
		}
		return p.opts.Punch.PunchStream(ctx, peer)
	}
	if addr == route.TURN {
		if p.opts.TURN == nil {
			return nil, errors.New("no TURN routes")
		}
		return p.opts.TURN.PunchStream(ctx, peer)
	}
	if via, ok := route.RelayOf(addr); ok {
		return p.dialRelay(ctx, peer, via)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// dialRelay asks member via for a pipe to peer's share, over one of our
// connections to via. The SSH handshake through it verifies peer's host
// key as on any route, so via forwards only ciphertext.
func (p *Pool) dialRelay(ctx context.Context, peer peers.Peer, via string) (net.Conn, error) {
	e, ok := p.opts.Routes.Members().ByID(via)
	if !ok {
		return nil, fmt.Errorf("relay %s is not a live member", via)
	}
	g, err := p.group(e.Peer)
	if err != nil {
		return nil, err
	}
	c, err := g.acquire(ctx, e.Peer)
	if err != nil {
		return nil, fmt.Errorf("reach relay %s: %w", peerLabel(e.Peer), err)
	}
	ch, reqs, err := c.ssh.OpenChannel(route.ChannelRelay, ssh.Marshal(route.RelayRequest{Target: peer.ID}))
	if err != nil {
		g.release(c, nil)
		return nil, fmt.Errorf("relay %s: %w", peerLabel(e.Peer), err)
	}
	go ssh.DiscardRequests(reqs)
	// The relayed connection counts as a request in flight on c, so
	// that c is not closed as idle under it.
	s := &relayedConn{Stream: route.NewStream(ch, c.ssh.LocalAddr(), c.ssh.RemoteAddr())}
	s.release = func() { g.release(c, nil) }
	return s, nil
}

type relayedConn struct {
	*route.Stream
	once    sync.Once
	release func()
}

func (r *relayedConn) Close() error {
	err := r.Stream.Close()
	r.once.Do(r.release)
	return err
}

// routeName says how addr reaches a peer, for logs and `dsftp peers`.
func (p *Pool) routeName(addr string) string {
	if addr == route.Reverse || addr == route.Punched || addr == route.TURN {
		return addr
	}
	if via, ok := route.RelayOf(addr); ok {
		if p.opts.Routes != nil {
			if e, ok := p.opts.Routes.Members().ByID(via); ok {
				via = e.DisplayName
			}
		}
		return "relay via " + via
	}
	return "direct"
}

// Route says how the pool's connections reach the peer with this ID now:
// "direct", "punched", "reverse", "relay via NAME", "turn", or "" when
// none is open.
func (p *Pool) Route(id string) string {
	p.mu.Lock()
	g := p.groups[id]
	p.mu.Unlock()
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	route := ""
	for _, c := range g.conns {
		if !c.dead.Load() {
			if !c.retiring.Load() {
				return p.routeName(c.addr)
			}
			route = p.routeName(c.addr)
		}
	}
	return route
}

// SSHClient makes one SSH connection to peer at addr with the pool's
// keys and host key check, without SFTP: a reverse connection
// (route.Dialer).
func (p *Pool) SSHClient(ctx context.Context, peer peers.Peer, addr string) (*ssh.Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	cfg, closeAgent := p.clientConfig(peer, addr)
	defer closeAgent()
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// SendRequest sends a global request to peer's share over one of the
// pool's connections to it, waiting for the reply until ctx ends: a
// dial-back check (route.Requester).
func (p *Pool) SendRequest(ctx context.Context, peer peers.Peer, name string, payload []byte) (bool, []byte, error) {
	g, err := p.group(peer)
	if err != nil {
		return false, nil, err
	}
	c, err := g.acquire(ctx, peer)
	if err != nil {
		return false, nil, err
	}
	defer g.release(c, nil)
	if d, ok := ctx.Deadline(); ok {
		until := d.UnixNano()
		if old := c.holding.Load(); until > old && c.holding.CompareAndSwap(old, until) {
			defer c.holding.CompareAndSwap(until, 0)
		}
	}
	type answer struct {
		ok      bool
		payload []byte
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		ok, payload, err := c.ssh.SendRequest(name, true, payload)
		done <- answer{ok, payload, err}
	}()
	select {
	case a := <-done:
		return a.ok, a.payload, a.err
	case <-ctx.Done():
		return false, nil, fmt.Errorf("%s: %w", name, ErrTimeout)
	}
}
