package share

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A flood must not turn into one log line per connection (one wrote
// 324,141 WARN lines in 50 s). Repeated events of one kind from one source
// are logged in full logBurst times per window; the rest are counted and
// summarised once the window ends: "refused 12,345 connections from
// 1.2.3.4 in the last minute".
const (
	logBurst   = 5
	logWindow  = time.Minute
	maxLogKeys = 4096 // beyond this, sources are summarised together
)

// logKind is a kind of repeated event.
type logKind int

const (
	kindRefused   logKind = iota // connection refused before or at login
	kindNoLogin                  // connection closed without logging in
	kindAuthFail                 // failed login attempt
	kindLoggedIn                 // a logged-in connection's lines (opened, closed)
	kindAcceptErr                // accept() failed
	kindUnshared                 // a file refused at open (a key, a dsftp secret)
)

type logKey struct {
	kind   logKind
	src    source // invalid: all other sources
	reason string // one of a few fixed texts, or ""
}

type logCount struct {
	shown, suppressed int
}

// logLimiter rate-limits and summarises repeated log events.
type logLimiter struct {
	log    *slog.Logger
	window time.Duration

	mu sync.Mutex
	m  map[logKey]*logCount
}

func newLogLimiter(log *slog.Logger, window time.Duration) *logLimiter {
	return &logLimiter{log: log, window: window, m: map[logKey]*logCount{}}
}

// allow counts one event of kind from src, for reason (one of a few fixed
// texts, or ""); it reports whether to log this one in full. Each reason
// has its own first lines, so a new kind of trouble shows at once.
func (l *logLimiter) allow(kind logKind, src source, reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := logKey{kind, src, reason}
	c := l.m[k]
	if c == nil {
		if len(l.m) >= maxLogKeys {
			k = logKey{kind: kind}
			c = l.m[k]
		}
		if c == nil {
			c = &logCount{}
			l.m[k] = c
		}
	}
	if c.shown < logBurst && k.src == src {
		c.shown++
		return true
	}
	c.suppressed++
	return false
}

// run flushes a summary every window until ctx ends, then once more.
func (l *logLimiter) run(ctx context.Context) {
	t := time.NewTicker(l.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-t.C:
			l.flush()
		}
	}
}

// flush logs one summary line per (kind, source) with suppressed events,
// in a stable order, and starts a new window.
func (l *logLimiter) flush() {
	l.mu.Lock()
	m := l.m
	l.m = map[logKey]*logCount{}
	l.mu.Unlock()
	keys := make([]logKey, 0, len(m))
	for k, c := range m {
		if c.suppressed > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b logKey) int {
		if a.kind != b.kind {
			return int(a.kind) - int(b.kind)
		}
		if d := a.src.compare(b.src); d != 0 {
			return d
		}
		return strings.Compare(a.reason, b.reason)
	})
	span := "in the last minute"
	if l.window != time.Minute {
		span = "in the last " + l.window.String()
	}
	for _, k := range keys {
		c := m[k]
		total := c.shown + c.suppressed
		from := "from " + k.src.String()
		if !k.src.valid() {
			from = "from other addresses"
			total = c.suppressed
		}
		n := thousands(total)
		attrs := []any{"remote", k.src.String(), "count", total, "logged", c.shown}
		if k.reason != "" {
			attrs = append(attrs, "reason", k.reason)
		}
		switch k.kind {
		case kindRefused:
			l.log.Warn(fmt.Sprintf("refused %s connections %s %s", n, from, span), attrs...)
		case kindNoLogin:
			l.log.Info(fmt.Sprintf("%s connections %s closed without login %s", n, from, span), attrs...)
		case kindAuthFail:
			l.log.Info(fmt.Sprintf("%s failed login attempts %s %s", n, from, span), attrs...)
		case kindLoggedIn:
			l.log.Info(fmt.Sprintf("%s log lines about logged-in connections %s %s (only the first %d shown)", n, from, span, logBurst), attrs...)
		case kindUnshared:
			l.log.Warn(fmt.Sprintf("refused to serve unshared files %s more times %s", n, span), "count", c.suppressed, "why", k.reason)
		case kindAcceptErr:
			l.log.Warn(fmt.Sprintf("accept failed %s times %s; retrying with backoff", n, span), attrs[2:]...)
		}
	}
}

// thousands formats n with commas: 12345 -> "12,345".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
