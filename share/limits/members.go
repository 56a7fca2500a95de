package limits

import "time"

// Connections from a source that a member's advert names (the share's UDP
// path knows its members' public addresses, the UDP candidates of their
// adverts) have a pre-login budget of their own: strangers that fill
// MaxStartups with connections that never log in do not keep members out.
// Per-source limits and penalties apply to them as to any connection.

// AdmitMember is Admit for a stream from src, a source that a live
// member's advert names: it counts against a budget of MaxStartups.Full
// of its own, without random early drop, and never gives way to a newer
// connection.
func (g *Gate) AdmitMember(src Source, now time.Time) (*Startup, error) {
	if _, blocked := g.pen.blocked(src, now); blocked {
		return nil, ErrPenalised
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.memberStartups >= g.opts.MaxStartups.Full:
		return nil, ErrStartupsFull
	case g.srcStart[src] >= g.opts.MaxStartupsPerSource:
		return nil, ErrSourceLogins
	}
	g.memberStartups++
	g.srcStart[src]++
	return &Startup{g: g, src: src, member: true}, nil
}
