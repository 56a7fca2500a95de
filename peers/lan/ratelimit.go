package lan

import (
	"sync"

	"golang.org/x/time/rate"
)

// limiter bounds the adverts verified per second, in total and per source
// address, so that a flood costs little CPU and one noisy host cannot
// crowd out the others. Each bucket holds two seconds' worth.
type limiter struct {
	mu        sync.Mutex
	perSource rate.Limit
	maxSrc    int
	total     *rate.Limiter
	sources   map[string]*rate.Limiter
}

func newLimiter(perSec, perSource float64, maxSources int) *limiter {
	perSource = max(perSource, 1)
	return &limiter{
		perSource: rate.Limit(perSource),
		maxSrc:    maxSources,
		total:     rate.NewLimiter(rate.Limit(perSec), int(2*perSec)),
		sources:   map[string]*rate.Limiter{},
	}
}

// allow reports whether an advert from src may be verified now.
func (l *limiter) allow(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= l.maxSrc {
			// Many sources (spoofed, most likely): start over rather
			// than grow without bound; the total bucket still holds.
			clear(l.sources)
		}
		b = rate.NewLimiter(l.perSource, int(2*l.perSource))
		l.sources[src] = b
	}
	return b.Allow() && l.total.Allow()
}
