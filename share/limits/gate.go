package limits

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Why a connection is refused; the server logs the text.
var (
	ErrPenalised    = errors.New("address penalised for failed or stalled logins")
	ErrStartupsFull = errors.New("too many connections logging in at once")
	ErrEarlyDrop    = errors.New("random early drop: many connections logging in at once")
	ErrSourceLogins = errors.New("too many connections logging in from this address")
	ErrConns        = errors.New("too many connections")
	ErrKeyConns     = errors.New("too many connections with this key")
	ErrSourceConns  = errors.New("too many connections from this address")
)

// Gate counts connections before and after login, globally, per source
// and per key, and keeps the penalties. One mutex for the counts: every
// operation is a few map updates.
type Gate struct {
	opts Options
	pen  *penalties

	mu             sync.Mutex
	startups       int
	memberStartups int // members.go
	srcStart       map[Source]int
	srcList        map[Source][]*Startup // TCP ones, oldest first (silent.go)
	conns          int
	srcConns       map[Source]int
	keyConns       map[string]int
}

// New makes a Gate; zero options take their defaults (see
// Options.FillDefaults).
func New(opts Options) (*Gate, error) {
	if err := opts.FillDefaults(); err != nil {
		return nil, err
	}
	return &Gate{
		opts:     opts,
		pen:      newPenalties(opts.PenaltyMax),
		srcStart: map[Source]int{},
		srcList:  map[Source][]*Startup{},
		srcConns: map[Source]int{},
		keyConns: map[string]int{},
	}, nil
}

// Admit decides about a new connection from src before anything is sent
// to it. conn is its TCP connection, which may give way to a newer one
// from src (silent.go), or nil for one that never does (a relayed
// stream). When src is at its limit of connections logging in, the new
// one takes the slot of src's oldest silent connection, which is closed
// with a reset. The Startup holds the pre-login slot until its Leave.
func (g *Gate) Admit(src Source, conn net.Conn, now time.Time) (*Startup, error) {
	if _, blocked := g.pen.blocked(src, now); blocked {
		return nil, ErrPenalised
	}
	st := &Startup{g: g, src: src, conn: conn}
	g.mu.Lock()
	if g.startups >= g.opts.MaxStartups.Full {
		g.mu.Unlock()
		return nil, ErrStartupsFull
	}
	if g.opts.MaxStartups.drop(g.startups) {
		g.mu.Unlock()
		return nil, ErrEarlyDrop
	}
	if g.srcStart[src] >= g.opts.MaxStartupsPerSource {
		old := g.oldestSilentLocked(src)
		if old == nil {
			g.mu.Unlock()
			return nil, ErrSourceLogins
		}
		g.listLocked(st) // in old's slot: the counts stay
		g.mu.Unlock()
		Refuse(old.conn)
		return st, nil
	}
	g.startups++
	g.srcStart[src]++
	g.listLocked(st)
	g.mu.Unlock()
	return st, nil
}

// Refuse closes a connection refused before the SSH banner with a reset:
// nothing is sent, and no TIME_WAIT socket per refused connection piles up
// on this side during a flood.
func Refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// leaveStartupLocked frees st's pre-login slot. g.mu is held.
func (g *Gate) leaveStartupLocked(st *Startup) {
	if st.member {
		g.memberStartups--
	} else {
		g.startups--
	}
	if g.srcStart[st.src]--; g.srcStart[st.src] <= 0 {
		delete(g.srcStart, st.src)
	}
}

// Login takes a logged-in slot for a connection from src with client key
// fingerprint key ("" for password logins, which are limited per source
// only). Call Logout with the same arguments once it ends.
func (g *Gate) Login(src Source, key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.conns >= g.opts.MaxConns:
		return ErrConns
	case key != "" && g.keyConns[key] >= g.opts.MaxConnsPerKey:
		return ErrKeyConns
	case g.srcConns[src] >= g.opts.MaxConnsPerSource:
		return ErrSourceConns
	}
	g.conns++
	g.srcConns[src]++
	if key != "" {
		g.keyConns[key]++
	}
	return nil
}

// Logout frees the logged-in slot that Login took.
func (g *Gate) Logout(src Source, key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns--
	if g.srcConns[src]--; g.srcConns[src] <= 0 {
		delete(g.srcConns, src)
	}
	if key != "" {
		if g.keyConns[key]--; g.keyConns[key] <= 0 {
			delete(g.keyConns, key)
		}
	}
}
