package lifecycle

import (
	"context"

	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// consoleHandler writes log lines for a person at a terminal: no time
// stamp or level key, "dsftp: warning: what happened (key=value …)".
type consoleHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Level
	attrs  string // from WithAttrs, formatted
	prefix string // open groups, "a.b."
}

func newConsoleHandler(w io.Writer, level slog.Level) *consoleHandler {
	return &consoleHandler{mu: &sync.Mutex{}, w: w, level: level}
}

func (h *consoleHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *consoleHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("dsftp: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	attrs := h.attrs
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendAttr(attrs, h.prefix, a)
		return true
	})
	if attrs != "" {
		b.WriteString(" (" + strings.TrimPrefix(attrs, " ") + ")")
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *consoleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, n.prefix, a)
	}
	return &n
}

func (h *consoleHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix += name + "."
	return &n
}

// appendAttr adds " key=value" to s, the value quoted when it would not
// read as one word.
func appendAttr(s, prefix string, a slog.Attr) string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return s
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			s = appendAttr(s, p, g)
		}
		return s
	}
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \t\n\"=()") {
		v = strconv.Quote(v)
	}
	return s + " " + prefix + a.Key + "=" + v
}

var _ slog.Handler = (*consoleHandler)(nil)
