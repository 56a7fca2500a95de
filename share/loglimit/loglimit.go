// Package loglimit is dsftp's one log limiter: a slog.Handler that wraps
// the program's handler, so that no flood of events (refused connections,
// refused relays, dial-back checks, bad adverts, on any path) can fill the
// log, whoever logs them. Lines are keyed by their level, their message and
// a few identity attributes (who caused them: source address, member key,
// peer, reason); the first Burst lines of each key are written per window,
// the rest are counted, and once the window ends each key that held lines
// back writes one summary line: "<message> (N more like this in the last
// minute)". Debug lines pass unlimited: they are written only when asked
// for.
package loglimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults: the first 5 lines of each key a minute.
const (
	DefaultBurst  = 5
	DefaultWindow = time.Minute

	// MaxKeys bounds the table (then maxOverflow keys shared by many
	// identities, then one for all). An entry holds its key and identity
	// (values cut at maxValue): measured, a full table (1,153 keys) of
	// lines with all nine identity attributes takes 1.4 MiB, 2.8 MiB
	// with every value at the cut; dsftp's lines carry one to three.
	MaxKeys = 1024
	// maxPerMessage is how many identities one message gets keys for in
	// a window; lines of further identities share one key per message
	// ("from others"), so a flood from many addresses or keys writes
	// at most maxPerMessage+1 times Burst lines of one message a window.
	maxPerMessage = 8
	// maxValue is how much of an identity value counts.
	maxValue = 128
)

// identity are the attribute keys that say who caused a line. Anything
// else (an error text, a path, a byte count) varies from line to line
// and is not part of the key. A value of the form address:port counts
// as the address alone: a client's port changes with every connection.
var identity = map[string]bool{
	"source":  true, // a source address (share: IPv4 address or IPv6 /64)
	"remote":  true, // a client's address (the port is dropped)
	"from":    true, // a sender's address (the port is dropped)
	"member":  true, // a member's key fingerprint
	"key":     true, // the logged-in client key's fingerprint
	"peer":    true, // a peer's name or ID
	"reason":  true, // a reason from a fixed set
	"why":     true, // likewise
	"outcome": true, // accepted or refused
}

// Limiter holds the counts of every Handler made from it: one per
// program, so a line counts the same whichever logger wrote it.
type Limiter struct {
	burst  int
	window time.Duration

	mu      sync.Mutex
	m       map[string]*entry
	perMsg  map[string]int // identities keyed per level and message this window
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type entry struct {
	shown, held int
	level       slog.Level
	msg         string
	ident       []slog.Attr  // the key's identity, for the summary
	h           slog.Handler // where the summary goes
}

// New makes a limiter that lets burst lines of each key through per
// window and sums up the rest once the window ends. Call Close when the
// program ends to write the last summaries.
func New(burst int, window time.Duration) *Limiter {
	l := &Limiter{
		burst: burst, window: window,
		m: map[string]*entry{}, perMsg: map[string]int{},
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	go l.run()
	return l
}

// Handler wraps h: its lines go through the limiter.
func (l *Limiter) Handler(h slog.Handler) slog.Handler { return &Handler{l: l, h: h, root: h} }

// Close writes the summaries of the window so far and stops the limiter;
// lines after Close are written without limit.
func (l *Limiter) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.stopped
}

func (l *Limiter) run() {
	defer close(l.stopped)
	t := time.NewTicker(l.window)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.Flush()
			return
		case <-t.C:
			l.Flush()
		}
	}
}

// Flush writes one summary line per key that held lines back and starts a
// new window.
func (l *Limiter) Flush() {
	l.mu.Lock()
	m := l.m
	l.m, l.perMsg = map[string]*entry{}, map[string]int{}
	l.mu.Unlock()
	var held []*entry
	for _, e := range m {
		if e.held > 0 {
			held = append(held, e)
		}
	}
	slices.SortFunc(held, func(a, b *entry) int { return strings.Compare(a.msg, b.msg) })
	span := "minute"
	if l.window != time.Minute {
		span = l.window.String()
	}
	now := time.Now()
	for _, e := range held {
		r := slog.NewRecord(now, e.level, fmt.Sprintf("%s (%s more like this in the last %s)", e.msg, thousands(e.held), span), 0)
		r.AddAttrs(e.ident...)
		r.AddAttrs(slog.Int("suppressed", e.held))
		_ = e.h.Handle(context.Background(), r)
	}
}

// maxOverflow bounds the keys that identities beyond maxPerMessage (or
// beyond MaxKeys) share: one per message. Past it, all further lines
// share one last key.
const maxOverflow = 128

// others stands for the identities that share one key.
var others = []slog.Attr{slog.String("from", "others")}

// allow counts a line and reports whether to write it. root is where the
// line would go without its logger's With: the summary goes there, with
// the key's identity (and no other attribute of one line).
func (l *Limiter) allow(level slog.Level, msg string, ident []slog.Attr, root slog.Handler) bool {
	select {
	case <-l.stop:
		return true
	default:
	}
	key := keyOf(level, msg, ident)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		e = l.newEntry(key, level, msg, ident, root)
	}
	if e.shown < l.burst {
		e.shown++
		return true
	}
	e.held++
	return false
}

// newEntry adds the key of a line seen first in this window: its own,
// one shared by the identities of its message over the bounds, or the
// last one shared by all.
func (l *Limiter) newEntry(key string, level slog.Level, msg string, ident []slog.Attr, root slog.Handler) *entry {
	mk := keyOf(level, msg, nil)
	if len(l.m) < MaxKeys && (len(ident) == 0 || l.perMsg[mk] < maxPerMessage) {
		e := &entry{level: level, msg: msg, ident: ident, h: root}
		l.m[key] = e
		if len(ident) > 0 {
			l.perMsg[mk]++
		}
		return e
	}
	key = mk + "\x00others"
	if e := l.m[key]; e != nil {
		return e
	}
	if len(l.m) < MaxKeys+maxOverflow {
		e := &entry{level: level, msg: msg, ident: others, h: root}
		l.m[key] = e
		return e
	}
	key = "\x00full"
	if e := l.m[key]; e != nil {
		return e
	}
	e := &entry{level: level, msg: "log lines of many kinds", ident: others, h: root}
	l.m[key] = e
	return e
}

// keyOf is the table key of a line.
func keyOf(level slog.Level, msg string, ident []slog.Attr) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(level)))
	b.WriteByte(0)
	b.WriteString(msg)
	for _, a := range ident {
		b.WriteByte(0)
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
	}
	return b.String()
}

// Handler is one logger's view of the limiter: the wrapped handler, and
// the identity attributes of its With.
type Handler struct {
	l      *Limiter
	h      slog.Handler
	root   slog.Handler // h before any With: where summaries go
	ident  []slog.Attr  // sorted by key
	groups bool         // attributes from here on are in a group: not identity
}

// Enabled reports whether the wrapped handler takes level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.h.Enabled(ctx, level)
}

// Handle writes r unless its key has used up its lines for the window.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		// Debug lines are asked for (--log-level debug) to see every
		// event; the handler below writes them only then.
		return h.h.Handle(ctx, r)
	}
	ident := h.ident
	if !h.groups {
		r.Attrs(func(a slog.Attr) bool {
			ident = addIdentity(ident, a)
			return true
		})
	}
	if !h.l.allow(r.Level, r.Message, ident, h.root) {
		return nil
	}
	return h.h.Handle(ctx, r)
}

// WithAttrs notes the identity attributes among as.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &Handler{l: h.l, h: h.h.WithAttrs(as), root: h.root, ident: h.ident, groups: h.groups}
	if !h.groups {
		for _, a := range as {
			n.ident = addIdentity(n.ident, a)
		}
	}
	return n
}

// WithGroup opens a group; attributes in it are not identity.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{l: h.l, h: h.h.WithGroup(name), root: h.root, ident: h.ident, groups: true}
}

// addIdentity returns ident with a's identity form added in key order
// (so a line's key does not depend on the order of its attributes), or
// ident itself if a is no identity attribute. The result is a new array:
// ident is shared by every line of its logger.
func addIdentity(ident []slog.Attr, a slog.Attr) []slog.Attr {
	id, ok := identityOf(a)
	if !ok {
		return ident
	}
	i, _ := slices.BinarySearchFunc(ident, id.Key, func(x slog.Attr, k string) int { return strings.Compare(x.Key, k) })
	return slices.Insert(slices.Clip(ident), i, id)
}

// identityOf returns a's identity form (address:port cut to the address,
// long values cut), if a is an identity attribute.
func identityOf(a slog.Attr) (slog.Attr, bool) {
	if !identity[a.Key] {
		return slog.Attr{}, false
	}
	v := a.Value.Resolve().String()
	if ap, err := netip.ParseAddrPort(v); err == nil {
		v = ap.Addr().Unmap().WithZone("").String()
	}
	if len(v) > maxValue {
		v = strings.Clone(v[:maxValue]) // not the whole value kept alive
	}
	return slog.String(a.Key, v), true
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
