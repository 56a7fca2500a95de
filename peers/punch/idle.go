package punch

import (
	"net/netip"
	"slices"
	"time"

	"github.com/quic-go/quic-go"
)

// A source at its limit of connections is not locked out by connections
// that hold no stream: a newcomer from it takes the place of its oldest
// connection that has had no stream open for idleGrace (unusedGrace if it
// never had one), as the share's
// pre-login limit lets a newcomer take a silent connection's place. So a
// friend behind the same address as an attacker (one carrier-grade NAT)
// still gets in, and a path that carries an SSH connection is never the
// one closed.

// idleGrace is how long an established connection may go without a
// stream before a newcomer from its source may take its place: a dialer
// that wants a stream sends it with its last handshake packet, so only
// the hand-over inside this process lies between the two. It is also
// what an attacker on a friend's address must beat: to keep the friend
// out it has to open a new connection every idleGrace for each of the
// source's slots.
const idleGrace = 500 * time.Millisecond

// unusedGrace is idleGrace for a connection that has never had a stream.
// Such a connection serves nobody yet. An attacker that dials again
// whenever a slot passes the grace keeps its slots young, and a friend
// on its address gets in only while one is older: the shorter the grace,
// the more often that is.
const unusedGrace = 100 * time.Millisecond

// errCodeIdle is the application error code of a connection closed to
// make room.
const errCodeIdle quic.ApplicationErrorCode = 0x1d1e

// idle is a slot's stream bookkeeping.
type idle struct {
	conn      *quic.Conn // nil until the handshake completes
	streams   int
	used      bool // a stream was opened on it
	idleSince time.Time
}

// established ends the handshake part of the slot; c is its connection.
func (s *slot) established(c *quic.Conn) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.endHandshake()
	s.conn, s.idleSince = c, time.Now()
}

// streamOpened and streamClosed count the connection's streams.
func (s *slot) streamOpened() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.streams++
	s.used = true
}

func (s *slot) streamClosed() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.streams--; s.streams == 0 {
		s.idleSince = time.Now()
	}
}

// idlestLocked is src's oldest established connection that has been
// without a stream for idleGrace (unusedGrace if it never had one), or
// nil.
func (l *limiter) idlestLocked(src netip.Addr, now time.Time) *slot {
	for _, s := range l.bySource[src] {
		grace := idleGrace
		if !s.used {
			grace = unusedGrace
		}
		if s.conn != nil && s.streams == 0 && now.Sub(s.idleSince) >= grace {
			return s
		}
	}
	return nil
}

// evictLocked frees the slot and closes its connection (outside the lock:
// closing waits for the connection's loop).
func (s *slot) evictLocked() {
	s.releaseLocked()
	s.l.evicted++
	go s.conn.CloseWithError(errCodeIdle, "idle connection closed for a newer one from its address")
}

// unlistLocked drops s from its source's list.
func (l *limiter) unlistLocked(s *slot) {
	list := slices.DeleteFunc(l.bySource[s.src], func(o *slot) bool { return o == s })
	if len(list) == 0 {
		delete(l.bySource, s.src)
		return
	}
	l.bySource[s.src] = list
}
