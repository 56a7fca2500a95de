package punch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
)

// limiter bounds the incoming QUIC connections: handshakes in progress
// and live connections, in all and per source address. A connection counts
// as handshaking from its first validated Initial (after Retry) until the
// listener hands it over, and as live until it closes.
type limiter struct {
	maxHS, maxHSPer, maxConns, maxConnsPer int

	mu      sync.Mutex
	hs      int
	conns   int
	hsBy    map[netip.Addr]int
	connsBy map[netip.Addr]int
	refused uint64
}

func newLimiter(c Config) *limiter {
	return &limiter{
		maxHS: c.MaxHandshakes, maxHSPer: c.MaxHandshakesPerSource,
		maxConns: c.MaxConns, maxConnsPer: c.MaxConnsPerSource,
		hsBy: map[netip.Addr]int{}, connsBy: map[netip.Addr]int{},
	}
}

var (
	errTooManyHandshakes = errors.New("too many QUIC handshakes in progress")
	errTooManyConns      = errors.New("too many QUIC connections")
)

// slot is one admitted connection's place in the counts.
type slot struct {
	l           *limiter
	ip          netip.Addr
	handshaking bool
	live        bool
}

// admit counts a new incoming connection from ip, or refuses it.
func (l *limiter) admit(ip netip.Addr) (*slot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.hs >= l.maxHS || l.hsBy[ip] >= l.maxHSPer:
		l.refused++
		return nil, errTooManyHandshakes
	case l.conns >= l.maxConns || l.connsBy[ip] >= l.maxConnsPer:
		l.refused++
		return nil, errTooManyConns
	}
	l.hs++
	l.hsBy[ip]++
	l.conns++
	l.connsBy[ip]++
	return &slot{l: l, ip: ip, handshaking: true, live: true}, nil
}

// established ends the handshake part of the slot.
func (s *slot) established() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.endHandshake()
}

// release frees the slot when its connection is gone.
func (s *slot) release() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.endHandshake()
	if s.live {
		s.live = false
		s.l.conns--
		dec(s.l.connsBy, s.ip)
	}
}

// endHandshake; the caller holds the lock.
func (s *slot) endHandshake() {
	if s.handshaking {
		s.handshaking = false
		s.l.hs--
		dec(s.l.hsBy, s.ip)
	}
}

func dec(m map[netip.Addr]int, ip netip.Addr) {
	if m[ip] <= 1 {
		delete(m, ip)
		return
	}
	m[ip]--
}

// Stats are the incoming connections' counts.
type Stats struct {
	Handshakes int    // in progress
	Conns      int    // live, handshaking ones included
	Refused    uint64 // refused by a limit since the start
}

func (l *limiter) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Handshakes: l.hs, Conns: l.conns, Refused: l.refused}
}

type slotKey struct{}

// connContext is the transport's hook for each new incoming connection
// (its address already validated by Retry): it takes a slot, which the
// connection's end gives back.
func (l *limiter) connContext(ctx context.Context, addr net.Addr, verified bool) (context.Context, error) {
	if !verified {
		// Retry is on for every source, so only a forged path gets here.
		return nil, errors.New("source address not validated")
	}
	ip := addrPort(addr).Addr()
	s, err := l.admit(ip)
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		s.release()
	}()
	return context.WithValue(ctx, slotKey{}, s), nil
}

// addrPort converts a UDP address, with IPv4-mapped IPv6 unmapped.
func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
