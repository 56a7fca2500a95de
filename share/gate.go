package share

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// source is what pre-login limits, penalties and per-source caps count
// by: the address a connection comes from (sourceOf), or, for one that
// arrived over a stream a member opened (a relay), the member it is for
// (memberSource). Comparable, so it keys maps.
type source struct {
	prefix netip.Prefix
	member string
}

// sourceOf is the source of a connection from a: the IPv4 address, or
// the /64 of an IPv6 one (one host usually holds a whole /64, so counting
// single IPv6 addresses would count nothing). A QUIC stream's address is
// its connection's UDP source, counted like a TCP connection's.
func sourceOf(a net.Addr) source {
	ap, ok := a.(interface{ AddrPort() netip.AddrPort })
	if !ok {
		return source{}
	}
	ip := ap.AddrPort().Addr().Unmap()
	if ip.Is4() {
		return source{prefix: netip.PrefixFrom(ip, 32)}
	}
	p, _ := ip.WithZone("").Prefix(64)
	return source{prefix: p}
}

// memberSource is the source of a stream that the member with host key
// fingerprint holder opened over its reverse connection for the member
// whose client key has fingerprint clientKey ("" when it does not say: the
// holder's own). It is the pair, not the client key alone: a holder that
// names someone else's key can get that key penalised only on streams it
// carries itself.
func memberSource(holder, clientKey string) source {
	if clientKey == "" {
		return source{member: holder}
	}
	return source{member: clientKey + " via " + holder}
}

func (s source) valid() bool { return s.prefix.IsValid() || s.member != "" }

// String shows a source as an address, a /64 for IPv6, or the member.
func (s source) String() string {
	switch {
	case s.member != "":
		return "member " + s.member
	case !s.prefix.IsValid():
		return "unknown"
	case s.prefix.Addr().Is4():
		return s.prefix.Addr().String()
	}
	return s.prefix.String()
}

// compare orders sources: addresses first, then members.
func (s source) compare(o source) int {
	if d := s.prefix.Addr().Compare(o.prefix.Addr()); d != 0 {
		return d
	}
	return strings.Compare(s.member, o.member)
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
	srcStart map[source]int
	srcList  map[source][]*startup // TCP ones, oldest first (silent.go)
	conns    int
	srcConns map[source]int
	keyConns map[string]int
}

func newGate(opts *Options) *gate {
	return &gate{
		opts:     opts,
		pen:      newPenalties(opts.PenaltyMax),
		srcStart: map[source]int{},
		srcList:  map[source][]*startup{},
		srcConns: map[source]int{},
		keyConns: map[string]int{},
	}
}

// admit decides about a new connection from src before anything is sent
// to it; "" means taken (call leaveStartup once it logs in or ends).
func (g *gate) admit(src source, now time.Time) string {
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
func (g *gate) leaveStartup(src source) {
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
func (g *gate) login(src source, key string) string {
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

func (g *gate) logout(src source, key string) {
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
