package share

import (
	"sync"
	"time"
)

// Penalties for sources that misbehave before logging in, after OpenSSH's
// PerSourcePenalties. Each event adds time to the source's penalty; once
// the accrued penalty reaches penaltyMin the source's new connections are
// refused at once (closed before the SSH banner) until it runs out. A
// source that keeps misbehaving stays out up to Options.PenaltyMax.
//
// Failed public-key logins cost nothing: an unknown key is harmless, and
// dsftp's own clients retry a refused key every few hundred milliseconds
// while the share learns it from discovery.
const (
	penaltyMin      = 15 * time.Second
	penaltySilent   = 10 * time.Second // no version line within VersionGrace
	penaltyGrace    = 10 * time.Second // no login within LoginGrace
	penaltyAuthFail = 5 * time.Second  // wrong password, or MaxAuthTries used up
	penaltyNoAuth   = 1 * time.Second  // closed before trying to log in

	// trustFor: a source from which a login succeeded is not charged for
	// silent, timed-out or abandoned connections for this long after
	// (wrong passwords and used-up login attempts still cost). Those
	// connections only hold pre-login slots, which the per-source limit
	// and the dropping of silent ones (silent.go) already bound; charging
	// them would lock out a friend behind the same address as an attacker
	// (one carrier-grade NAT) while the friend's logins succeed.
	trustFor = 10 * time.Minute

	// maxPenalised bounds the table (about 100 bytes an entry): a flood
	// from more sources than this is not remembered beyond it (new
	// sources go unpenalised, as OpenSSH's overflow=permissive) rather
	// than growing memory.
	maxPenalised = 65536
)

type penalty struct {
	until  time.Time
	active bool // accrued penaltyMin at some point: refuse until 'until'
}

// penalties is the per-source penalty table.
type penalties struct {
	max time.Duration // 0: penalties off

	mu        sync.Mutex
	m         map[source]*penalty
	good      map[source]time.Time // sources that logged in, until when trusted
	lastSweep time.Time
}

func newPenalties(max time.Duration) *penalties {
	return &penalties{max: max, m: map[source]*penalty{}, good: map[source]time.Time{}}
}

// trust notes a successful login from src (see trustFor). The table is
// bounded like the penalties: beyond maxPenalised sources, new ones are
// not remembered.
func (p *penalties) trust(src source, now time.Time) {
	if !src.valid() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.good[src]; !ok && len(p.good) >= maxPenalised {
		p.sweepLocked(now)
		if len(p.good) >= maxPenalised {
			return
		}
	}
	p.good[src] = now.Add(trustFor)
}

// trusted reports whether a login from src succeeded within trustFor.
func (p *penalties) trusted(src source, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.good[src]
	return ok && until.After(now)
}

// add charges src with d. It reports whether this made the source blocked.
func (p *penalties) add(src source, d time.Duration, now time.Time) bool {
	if p.max <= 0 || !src.valid() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[src]
	if e == nil {
		if len(p.m) >= maxPenalised {
			p.sweepLocked(now)
			if len(p.m) >= maxPenalised {
				return false
			}
		}
		e = &penalty{}
		p.m[src] = e
	}
	if e.until.Before(now) {
		e.until, e.active = now, false
	}
	e.until = e.until.Add(d)
	if e.until.Sub(now) > p.max {
		e.until = now.Add(p.max)
	}
	if !e.active && e.until.Sub(now) >= min(penaltyMin, p.max) {
		e.active = true
		return true
	}
	return false
}

// blocked reports whether src is serving a penalty, and until when.
func (p *penalties) blocked(src source, now time.Time) (time.Time, bool) {
	if p.max <= 0 {
		return time.Time{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[src]
	if e == nil {
		return time.Time{}, false
	}
	if !e.until.After(now) {
		delete(p.m, src)
		return time.Time{}, false
	}
	return e.until, e.active
}

// sweepLocked drops expired entries, at most once a second so a full table
// under a distributed flood costs one scan a second, not one per event.
func (p *penalties) sweepLocked(now time.Time) {
	if now.Sub(p.lastSweep) < time.Second {
		return
	}
	p.lastSweep = now
	for k, e := range p.m {
		if !e.until.After(now) {
			delete(p.m, k)
		}
	}
	for k, until := range p.good {
		if !until.After(now) {
			delete(p.good, k)
		}
	}
}
