// Package pace holds the timing helpers discovery (peers/discord,
// peers/lan) shares: jittered intervals, so peers started together do not
// stay in step, and a per-kind log limiter, so a flood of bad input cannot
// fill the log.
package pace

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Jitter returns d moved at random by up to percent of it either way; d
// itself when it is not positive.
func Jitter(d time.Duration, percent int) time.Duration {
	if d <= 0 {
		return d
	}
	spread := d * time.Duration(percent) / 100
	return d - spread + rand.N(2*spread+1)
}

// LogLimiter lets one event per key through every Every and counts the
// ones it holds back in between. The zero value needs Every set.
type LogLimiter struct {
	Every time.Duration

	mu    sync.Mutex
	last  map[string]time.Time
	quiet map[string]int
}

// Allow reports whether the event of kind key at now may be logged, and
// if so how many of its kind were held back since the last one.
func (l *LogLimiter) Allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.quiet = map[string]time.Time{}, map[string]int{}
	}
	if t, seen := l.last[key]; seen && now.Sub(t) < l.Every {
		l.quiet[key]++
		return false, 0
	}
	suppressed = l.quiet[key]
	l.last[key], l.quiet[key] = now, 0
	return true, suppressed
}
