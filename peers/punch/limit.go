package punch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter bounds the incoming QUIC connections: handshakes in progress
// and live connections, in all, from strangers (sources that are no live
// member's UDP address) and per source. A connection counts as
// handshaking from its first validated Initial (after Retry) until the
// listener hands it over, and as live until it closes. Strangers get only
// part of the slots, so that silent connections from many addresses
// cannot keep members out.
type limiter struct {
	maxHS, maxHSPer, maxConns, maxConnsPer int
	maxStrangerHS, maxStrangerConns        int
	member, refuse                         func(netip.Addr) bool

	mu            sync.Mutex
	hs            int
	conns         int
	strangerHS    int
	strangerConns int
	hsBy          map[netip.Addr]int
	connsBy       map[netip.Addr]int
	bySource      map[netip.Addr][]*slot // live, oldest first (idle.go)
	refused       uint64
	evicted       uint64
}

func newLimiter(c Config) *limiter {
	return &limiter{
		maxHS: c.MaxHandshakes, maxHSPer: c.MaxHandshakesPerSource,
		maxConns: c.MaxConns, maxConnsPer: c.MaxConnsPerSource,
		maxStrangerHS: c.MaxStrangerHandshakes, maxStrangerConns: c.MaxStrangerConns,
		member: c.Member, refuse: c.Refuse,
		hsBy: map[netip.Addr]int{}, connsBy: map[netip.Addr]int{}, bySource: map[netip.Addr][]*slot{},
	}
}

// Source is what the per-source limits count ip as: the IPv4 address, or
// the IPv6 /64 (one subscriber's prefix, as the share's limits count it).
func Source(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip
	}
	p, _ := ip.Prefix(64)
	return p.Addr()
}

var (
	errRefusedSource     = errors.New("source refused for failed or stalled logins")
	errTooManyHandshakes = errors.New("too many QUIC handshakes in progress")
	errTooManyConns      = errors.New("too many QUIC connections")
)

// slot is one admitted connection's place in the counts.
type slot struct {
	l           *limiter
	src         netip.Addr
	stranger    bool
	handshaking bool
	live        bool
	idle        // what idle.go needs
}

// admit counts a new incoming connection from ip, or refuses it. A source
// at its connection limit gets in in the place of its oldest idle
// connection, which is closed (idle.go).
func (l *limiter) admit(ip netip.Addr) (*slot, error) {
	src := Source(ip)
	refuse := l.refuse != nil && l.refuse(src)
	stranger := l.member != nil && !l.member(src)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if refuse {
		l.refused++
		return nil, errRefusedSource
	}
	var victim *slot
	switch {
	case l.hs >= l.maxHS || l.hsBy[src] >= l.maxHSPer || stranger && l.strangerHS >= l.maxStrangerHS:
		l.refused++
		return nil, errTooManyHandshakes
	case l.conns >= l.maxConns || stranger && l.strangerConns >= l.maxStrangerConns:
		l.refused++
		return nil, errTooManyConns
	case l.connsBy[src] >= l.maxConnsPer:
		if victim = l.idlestLocked(src, now); victim == nil {
			l.refused++
			return nil, errTooManyConns
		}
		victim.evictLocked()
	}
	l.hs++
	l.hsBy[src]++
	l.conns++
	l.connsBy[src]++
	if stranger {
		l.strangerHS++
		l.strangerConns++
	}
	sl := &slot{l: l, src: src, stranger: stranger, handshaking: true, live: true}
	l.bySource[src] = append(l.bySource[src], sl)
	return sl, nil
}

// release frees the slot when its connection is gone.
func (s *slot) release() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.releaseLocked()
}

// releaseLocked; the caller holds the lock.
func (s *slot) releaseLocked() {
	s.endHandshake()
	if s.live {
		s.live = false
		s.l.conns--
		dec(s.l.connsBy, s.src)
		if s.stranger {
			s.l.strangerConns--
		}
		s.l.unlistLocked(s)
	}
}

// endHandshake; the caller holds the lock.
func (s *slot) endHandshake() {
	if s.handshaking {
		s.handshaking = false
		s.l.hs--
		dec(s.l.hsBy, s.src)
		if s.stranger {
			s.l.strangerHS--
		}
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
	Evicted    uint64 // idle ones closed to make room for their source's newcomers
}

func (l *limiter) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Handshakes: l.hs, Conns: l.conns, Refused: l.refused, Evicted: l.evicted}
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
