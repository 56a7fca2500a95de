// Package lifecycle is how a dsftp process lives: its logs (level, file,
// system log), its signals, running in the background (--daemon) and
// telling systemd when it is ready.
package lifecycle

import (
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

	levelSet bool
	closer   io.Closer
}

// Register adds --log-level, -v, -q, --log-json and --log-file to fl.
func (l *Logging) Register(fl *pflag.FlagSet) {
	fl.StringVar(&l.Level, "log-level", "info", "log level: debug, info, warn or error")
	fl.BoolVarP(&l.Verbose, "verbose", "v", false, "log everything (--log-level debug)")
	fl.BoolVarP(&l.Quiet, "quiet", "q", false, "log only errors (--log-level error)")
	fl.BoolVar(&l.JSON, "log-json", false, "write logs as JSON lines instead of text")
	fl.StringVar(&l.File, "log-file", "", "append logs to `FILE` instead of stderr (with --daemon: instead of the system log)")
}

// Setup installs the default logger. quietOnTerminal lowers the default
// level to warnings when stderr is a terminal (get and shell, whose
// output is for the user, not a log); an explicit --log-level, -v or -q
// wins. In the background without --log-file, logs go to the system log.
func (l *Logging) Setup(fl *pflag.FlagSet, quietOnTerminal bool) error {
	level, err := l.level(fl, quietOnTerminal)
	if err != nil {
		return err
	}
	var w io.Writer = os.Stderr
	switch {
	case l.File != "":
		f, err := os.OpenFile(l.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		w, l.closer = f, f
	case IsDaemonChild():
		sl, err := openSyslog()
		if err != nil {
			// No syslog socket (a container): stderr is /dev/null then,
			// so say it where the parent still listens.
			return fmt.Errorf("no system log to write to (%v): pass --log-file FILE", err)
		}
		w, l.closer = sl, sl
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if l.JSON {
		h = slog.NewJSONHandler(w, opts)
	}
	slog.SetDefault(slog.New(LimitLogs(h)))
	return nil
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

// FlushLogs writes the summaries of the lines held back so far; call it as
// the program ends.
func FlushLogs() { limiter().Close() }

func (l *Logging) level(fl *pflag.FlagSet, quietOnTerminal bool) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	explicit := fl.Changed("log-level")
	switch {
	case l.Verbose && l.Quiet:
		return 0, errors.New("-v and -q contradict each other: give one")
	case l.Verbose:
		return slog.LevelDebug, nil
	case l.Quiet:
		return slog.LevelError, nil
	case !explicit && quietOnTerminal && term.IsTerminal(int(os.Stderr.Fd())):
		return slog.LevelWarn, nil
	}
	return level, nil
}
