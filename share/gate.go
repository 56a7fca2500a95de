package share

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// sourceOf is the "source" limits and penalties count by: the IPv4
// address, or the /64 of an IPv6 one (one host usually holds a whole /64,
// so counting single IPv6 addresses would count nothing).
func sourceOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p
}

// sourceString shows a source as an address, or as a /64 for IPv6.
func sourceString(p netip.Prefix) string {
	if !p.IsValid() {
		return "unknown"
	}
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// Reasons a connection is refused, as logged.
const (
	refusePenalty      = "address penalised for failed or stalled logins"
	refuseStartupsFull = "too many connections logging in at once"
	refuseEarlyDrop    = "random early drop: many connections logging in at once"
	refuseSourceLogin  = "too many connections logging in from this address"
	refuseConns        = "too many connections"
	refuseKeyConns     = "too many connections with this key"
	refuseSourceConns  = "too many connections from this address"
)

// gate counts connections before and after login, globally, per source
// and per key. One mutex: every operation is a few map updates.
type gate struct {
	opts *Options
	pen  *penalties

	mu       sync.Mutex
	startups int
	srcStart map[netip.Prefix]int
	srcList  map[netip.Prefix][]*startup // TCP ones, oldest first (silent.go)
	conns    int
	srcConns map[netip.Prefix]int
	keyConns map[string]int
}

func newGate(opts *Options) *gate {
	return &gate{
		opts:     opts,
		pen:      newPenalties(opts.PenaltyMax),
		srcStart: map[netip.Prefix]int{},
		srcList:  map[netip.Prefix][]*startup{},
		srcConns: map[netip.Prefix]int{},
		keyConns: map[string]int{},
	}
}

// admit decides about a new connection from src before anything is sent
// to it; "" means taken (call leaveStartup once it logs in or ends).
func (g *gate) admit(src netip.Prefix, now time.Time) string {
	return g.admitConn(&startup{src: src}, now)
}

// admitConn is admit for st, which takes the slot of its source's oldest
// silent connection when the source is at its limit (silent.go); that
// one is closed. "" means taken: call leave once st logs in or ends.
func (g *gate) admitConn(st *startup, now time.Time) string {
	src := st.src
	if _, blocked := g.pen.blocked(src, now); blocked {
		return refusePenalty
	}
	g.mu.Lock()
	if g.startups >= g.opts.MaxStartups.Full {
		g.mu.Unlock()
		return refuseStartupsFull
	}
	if g.opts.MaxStartups.drop(g.startups) {
		g.mu.Unlock()
		return refuseEarlyDrop
	}
	if g.srcStart[src] >= g.opts.MaxStartupsPerSource {
		old := g.oldestSilentLocked(src)
		if old == nil {
			g.mu.Unlock()
			return refuseSourceLogin
		}
		g.listLocked(st) // in old's slot: the counts stay
		g.mu.Unlock()
		refuse(old.conn)
		return ""
	}
	g.startups++
	g.srcStart[src]++
	g.listLocked(st)
	g.mu.Unlock()
	return ""
}

// leaveStartup frees the pre-login slot of a connection from src.
func (g *gate) leaveStartup(src netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.startups--
	if g.srcStart[src]--; g.srcStart[src] <= 0 {
		delete(g.srcStart, src)
	}
}

// login takes a logged-in slot for a connection from src with key (""
// for password logins, which are limited per source only); "" means taken
// (call logout).
func (g *gate) login(src netip.Prefix, key string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.conns >= g.opts.MaxConns:
		return refuseConns
	case key != "" && g.keyConns[key] >= g.opts.MaxConnsPerKey:
		return refuseKeyConns
	case g.srcConns[src] >= g.opts.MaxConnsPerSource:
		return refuseSourceConns
	}
	g.conns++
	g.srcConns[src]++
	if key != "" {
		g.keyConns[key]++
	}
	return ""
}

func (g *gate) logout(src netip.Prefix, key string) {
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
