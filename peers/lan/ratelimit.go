package lan

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers/internal/pace"
)

// bucket is a token bucket: rate tokens per second, up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens += now.Sub(b.last).Seconds() * rate
		if b.tokens > burst {
			b.tokens = burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// limiter bounds the adverts verified per second, in total and per source
// address, so that a flood costs little CPU and one noisy host cannot
// crowd out the others.
type limiter struct {
	mu        sync.Mutex
	rate      float64 // total per second
	perSource float64 // per source address per second
	maxSrc    int
	total     bucket
	sources   map[string]*bucket
}

func newLimiter(rate, perSource float64, maxSources int) *limiter {
	if perSource < 1 {
		perSource = 1
	}
	return &limiter{rate: rate, perSource: perSource, maxSrc: maxSources, sources: map[string]*bucket{}}
}

func (l *limiter) allow(src string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= l.maxSrc {
			// Many sources (spoofed, most likely): start over rather
			// than grow without bound; the total bucket still holds.
			clear(l.sources)
		}
		b = &bucket{}
		l.sources[src] = b
	}
	if !b.take(now, l.perSource, 2*l.perSource) {
		return false
	}
	return l.total.take(now, l.rate, 2*l.rate)
}

// logLimiter lets one log line per kind through every logEvery, and says
// how many were suppressed in between.
type logLimiter struct{ pace.LogLimiter }

const logEvery = 10 * time.Second

func (l *logLimiter) log(log *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	ok, suppressed := l.Allow(kind, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}
