// Package lifecycle is how a dsftp process lives: its logs (level, file,
// system log), its signals, running in the background (--daemon) and
// telling systemd when it is ready.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/dsftp/dsftp/share/loglimit"

	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Logging are the flags every command has for its logs.
type Logging struct {
	Level   string
	Verbose bool
	Quiet   bool
	JSON    bool
	File    string

	explicit bool // -v, -q or --log-level given
	closer   io.Closer
}

// Chosen reports whether the user chose where or what to log (--log-file,
// --log-json, -v, -q, --log-level), rather than leaving it to the
// defaults.
func (l *Logging) Chosen() bool { return l.File != "" || l.JSON || l.explicit }

// Register adds --log-level, -v, -q, --log-json and --log-file to fl.
func (l *Logging) Register(fl *pflag.FlagSet) {
	fl.StringVar(&l.Level, "log-level", "info", "log level: debug, info, warn or error")
	fl.BoolVarP(&l.Verbose, "verbose", "v", false, "log everything (--log-level debug)")
	fl.BoolVarP(&l.Quiet, "quiet", "q", false, "log only errors (--log-level error)")
	fl.BoolVar(&l.JSON, "log-json", false, "write logs as JSON lines instead of text")
	fl.StringVar(&l.File, "log-file", "", "append logs to `FILE` instead of stderr (with --daemon: instead of the system log); a terminal still shows the warnings")
}

// Setup installs the default logger. The log (--log-file, the system log
// of a --daemon, or stderr when it is no terminal: a pipe, the journal)
// gets every line at the log level. A terminal is for the user, not a
// log: by default it shows only the warnings and errors, as plain lines;
// -v, -q, --log-level or --log-json there make it the log again.
func (l *Logging) Setup(fl *pflag.FlagSet) error {
	level, explicit, err := l.level(fl)
	if err != nil {
		return err
	}
	l.explicit = explicit
	onTerminal := !IsDaemonChild() && term.IsTerminal(int(os.Stderr.Fd()))
	var h slog.Handler
	switch {
	case l.File != "":
		f, err := os.OpenFile(l.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		l.closer = f
		h = l.logHandler(f, level)
		if onTerminal {
			h = slog.NewMultiHandler(h, newConsoleHandler(os.Stderr, max(level, slog.LevelWarn)))
		}
	case IsDaemonChild():
		sl, err := openSyslog()
		if err != nil {
			// No syslog socket (a container): stderr is /dev/null then,
			// so say it where the parent still listens.
			return fmt.Errorf("no system log to write to (%v): pass --log-file FILE", err)
		}
		l.closer = sl
		h = l.logHandler(sl, level)
	case onTerminal && !explicit && !l.JSON:
		h = newConsoleHandler(os.Stderr, slog.LevelWarn)
	default:
		h = l.logHandler(os.Stderr, level)
	}
	slog.SetDefault(slog.New(LimitLogs(h)))
	return nil
}

// logHandler writes log lines (text or JSON) to w.
func (l *Logging) logHandler(w io.Writer, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if l.JSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// limiter is the program's one log limiter: every logger of the process
// goes through it, so a flood of refusals on any path (connections,
// relays, reverse offers, dial-back checks, adverts) writes a few lines
// and a summary a minute per kind and source rather than a line per event.
var limiter = sync.OnceValue(func() *loglimit.Limiter {
	return loglimit.New(loglimit.DefaultBurst, loglimit.DefaultWindow)
})

// LimitLogs wraps h with the program's log limiter. A command that makes
// its own logger (the shell's quieter ones) wraps its handler with it.
func LimitLogs(h slog.Handler) slog.Handler { return limiter().Handler(h) }

// AtLeast is the default logger's view from level up: what a command
// whose own output would be broken by log lines (the shell's prompt)
// logs with. It writes where the default logger writes.
func AtLeast(level slog.Level) *slog.Logger {
	return slog.New(minLevel{slog.Default().Handler(), level})
}

// minLevel drops the lines below its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}

// FlushLogs writes the summaries of the lines held back so far; call it as
// the program ends.
func FlushLogs() { limiter().Close() }

// level is the log level the flags ask for; explicit says they asked.
func (l *Logging) level(fl *pflag.FlagSet) (slog.Level, bool, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, false, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	switch {
	case l.Verbose && l.Quiet:
		return 0, false, errors.New("-v and -q contradict each other: give one")
	case l.Verbose:
		return slog.LevelDebug, true, nil
	case l.Quiet:
		return slog.LevelError, true, nil
	}
	return level, fl.Changed("log-level"), nil
}
