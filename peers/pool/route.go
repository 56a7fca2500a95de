package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share/sshstream"
	"golang.org/x/crypto/ssh"
)

// Route pseudo-addresses: the pool dials them beside a peer's addresses.
const (
	routeReverse = "reverse"    // a channel over the peer's reverse connection to us
	routeRelay   = "relay via " // + fingerprint: a pipe through that member
)

// maxOffersPerPeer bounds the reverse connections one member may hold
// open to this share.
const maxOffersPerPeer = 2

// OpenTimeout bounds the wait for a member to answer a channel opened
// over its reverse connection. Its own dsftp answers at once; one that
// does not within this is not serving its reverse connection, which is
// closed (so it offers a working one, or none).
const OpenTimeout = 10 * time.Second

// Members is what routes ask of the registry. *peers.Registry has it.
type Members interface {
	ByID(id string) (peers.Entry, bool)
	ClientKeyMember(fp string) (string, bool)
}

// Routes is the table of reverse connections this share holds, by the
// offering member's host key fingerprint. It implements share.Routes (the
// share asks it whether to accept an offer or a relay) and gives the pool
// its reverse route.
type Routes struct {
	members  Members
	nextLink atomic.Uint32 // numbers the pool's links over reverse connections

	mu     sync.Mutex
	offers map[string][]*offer

	dialBack dialBackLimits // the checks we do for others (dialback.go)
	nonces   nonceTable     // the checks others do for us
}

type offer struct {
	conn ssh.Conn      // the member's connection to our share
	done chan struct{} // closed when it ends
}

// NewRoutes returns an empty table that checks membership with m.
func NewRoutes(m Members) *Routes {
	return &Routes{members: m, offers: map[string][]*offer{}}
}

// Offer accepts a reverse connection only from the member that owns
// hostKey: the key it logged in with must be one of that member's
// advertised client keys.
func (r *Routes) Offer(clientKey, hostKey string, conn ssh.Conn) (func(), error) {
	e, ok := r.members.ByID(hostKey)
	if !ok || e.ClientOnly {
		return nil, fmt.Errorf("%s is not a member with a live advert", hostKey)
	}
	if !slices.ContainsFunc(e.ClientKeys, func(k ssh.PublicKey) bool { return ssh.FingerprintSHA256(k) == clientKey }) {
		return nil, fmt.Errorf("the login key %s is not a client key of %s", clientKey, hostKey)
	}
	o := &offer{conn: conn, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.offers[hostKey]) >= maxOffersPerPeer {
		return nil, fmt.Errorf("already %d reverse connections from %s", maxOffersPerPeer, hostKey)
	}
	r.offers[hostKey] = append(r.offers[hostKey], o)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.offers[hostKey] = slices.DeleteFunc(r.offers[hostKey], func(x *offer) bool { return x == o })
		if len(r.offers[hostKey]) == 0 {
			delete(r.offers, hostKey)
		}
		close(o.done)
	}, nil
}

// Relay pipes a member with a live advert to another one whose reverse
// connection this share holds, telling that one which client key the
// relay is for (sshstream.ShareOpen), so that it counts what arrives
// against that member rather than against us.
func (r *Routes) Relay(clientKey, target string) (net.Conn, error) {
	if _, ok := r.members.ClientKeyMember(clientKey); !ok {
		return nil, errors.New("relays are only for members with a live advert")
	}
	if !r.Live(target) {
		return nil, fmt.Errorf("%s is not a member with a live advert", target)
	}
	return r.open(target, ssh.Marshal(sshstream.ShareOpen{ClientKey: clientKey}))
}

// Live reports whether hostKey is a sharing member with a live advert.
func (r *Routes) Live(hostKey string) bool {
	e, ok := r.members.ByID(hostKey)
	return ok && !e.ClientOnly
}

// Has reports whether a reverse connection from hostKey is held.
func (r *Routes) Has(hostKey string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.offers[hostKey]) > 0
}

// Held counts the reverse connections held, and the members they come
// from.
func (r *Routes) Held() (conns, members int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, os := range r.offers {
		conns += len(os)
	}
	return conns, len(r.offers)
}

// offersOf are the reverse connections held from hostKey, the newest
// first.
func (r *Routes) offersOf(hostKey string) []*offer {
	r.mu.Lock()
	os := slices.Clone(r.offers[hostKey]) // newest last
	r.mu.Unlock()
	slices.Reverse(os)
	return os
}

// Open opens a stream that carries a complete SSH connection to the share
// of hostKey, over one of its reverse connections, the newest first, for
// our own reads.
func (r *Routes) Open(hostKey string) (net.Conn, error) { return r.open(hostKey, nil) }

// open is Open with the ChannelShare payload (a relay's ShareOpen).
func (r *Routes) open(hostKey string, payload []byte) (net.Conn, error) {
	os := r.offersOf(hostKey)
	if len(os) == 0 {
		return nil, fmt.Errorf("no reverse connection from %s is held here", hostKey)
	}
	var errs []error
	for _, o := range os {
		ch, err := openChannel(o.conn, sshstream.ChannelShare, payload, OpenTimeout)
		if err == nil {
			return sshstream.New(ch, o.conn.LocalAddr(), o.conn.RemoteAddr()), nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("open a reverse channel to %s: %w", hostKey, errors.Join(errs...))
}

// errOpenTimeout: the member did not answer a channel open in time.
var errOpenTimeout = fmt.Errorf("no answer to a channel open within %v; closed its reverse connection", OpenTimeout)

// openChannel opens a channel of type typ on conn, giving the other end
// up to d to answer; one that does not gets conn closed, which also ends
// the wait (x/crypto/ssh has no way to give up on one open alone).
func openChannel(conn ssh.Conn, typ string, payload []byte, d time.Duration) (ssh.Channel, error) {
	type result struct {
		ch  ssh.Channel
		err error
	}
	done := make(chan result, 1)
	go func() {
		ch, reqs, err := conn.OpenChannel(typ, payload)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		done <- result{ch, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-done:
		return r.ch, r.err
	case <-t.C:
		conn.Close()
		if r := <-done; r.err == nil {
			r.ch.Close()
		}
		return nil, errOpenTimeout
	}
}

// routeAddrs adds the reverse and relay routes to a peer's addresses:
// reverse when we hold its reverse connection, relay through each member
// its advert says holds one (not us, and not the peer itself).
func (p *Pool) routeAddrs(peer peers.Peer, addrs []string) []string {
	if p.opts.Routes == nil {
		return addrs
	}
	out := slices.Clone(addrs)
	if p.opts.Routes.Has(peer.ID) {
		out = append(out, routeReverse)
	}
	if !p.opts.NoRelay {
		for _, v := range peer.Via {
			if v != peer.ID && v != p.opts.SelfID {
				out = append(out, routeRelay+v)
			}
		}
	}
	return out
}

// dialStream connects to one address or route of peer.
func (p *Pool) dialStream(ctx context.Context, peer peers.Peer, addr string) (net.Conn, error) {
	switch {
	case addr == routeReverse:
		if p.opts.Routes == nil {
			return nil, errors.New("no reverse routes")
		}
		return p.opts.Routes.Open(peer.ID)
	case strings.HasPrefix(addr, routeRelay):
		return p.dialRelay(ctx, peer, strings.TrimPrefix(addr, routeRelay))
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// dialRelay asks member via for a pipe to peer's share, over one of our
// connections to via. The SSH handshake through it verifies peer's host
// key as on any route, so via forwards only ciphertext.
func (p *Pool) dialRelay(ctx context.Context, peer peers.Peer, via string) (net.Conn, error) {
	e, ok := p.opts.Routes.members.ByID(via)
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
	ch, reqs, err := c.ssh.OpenChannel(sshstream.ChannelRelay, ssh.Marshal(sshstream.RelayRequest{Target: peer.ID}))
	if err != nil {
		g.release(c, nil)
		return nil, fmt.Errorf("relay %s: %w", peerLabel(e.Peer), err)
	}
	go ssh.DiscardRequests(reqs)
	// The relayed connection counts as a request in flight on c, so
	// that c is not closed as idle under it.
	s := &relayedConn{Conn: sshstream.New(ch, c.ssh.LocalAddr(), c.ssh.RemoteAddr())}
	s.release = func() { g.release(c, nil) }
	return s, nil
}

type relayedConn struct {
	*sshstream.Conn
	once    sync.Once
	release func()
}

func (r *relayedConn) Close() error {
	err := r.Conn.Close()
	r.once.Do(r.release)
	return err
}

// routeName says how addr reaches a peer, for logs and `dsftp peers`.
func (p *Pool) routeName(addr string) string {
	switch {
	case addr == routeReverse:
		return "reverse"
	case strings.HasPrefix(addr, routeRelay):
		via := strings.TrimPrefix(addr, routeRelay)
		if p.opts.Routes != nil {
			if e, ok := p.opts.Routes.members.ByID(via); ok {
				via = e.DisplayName
			}
		}
		return "relay via " + via
	}
	return "direct"
}

// Route says how the pool's connections reach the peer with this ID now:
// "direct", "reverse", "relay via NAME", or "" when none is open.
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
