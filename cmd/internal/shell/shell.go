// Package shell is dsftp's interactive client: `dsftp shell`. It keeps the
// commands of the tool dsftp replaces (list_peers, connect, ls, cd, get,
// pwd, disconnect, exit), adds help, lcd, lpwd, lls, get -r and ls -l, and
// uses github.com/chzyer/readline for editing, history and completion.
//
// The shell sees peers only through Remote, and downloads with
// cmd/internal/download, the engine `dsftp get` uses too.
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// PeerInfo is what list_peers shows about a peer.
type PeerInfo struct {
	Name        string // display name, unique
	Addr        string // best address
	Source      string // where it was found: flag, discord, lan
	Fingerprint string // host key fingerprint
}

// Remote is the shell's view of the peers.
type Remote interface {
	// Peers lists the live peers sorted by name.
	Peers() []PeerInfo
	// Settling reports whether discovery is still collecting peers, so an
	// empty or short list may grow.
	Settling() bool
	// Connect returns the share of the named peer, opening a session if
	// needed. The error says why not (unknown peer, refused host key, …).
	Connect(ctx context.Context, name string) (download.Source, error)
	// Disconnect closes the session to the named peer, if any.
	Disconnect(name string)
	// Origin is an identity of the named peer that changes when another
	// machine takes the name (for resuming downloads safely).
	Origin(name string) string
}

// Options configure a Shell.
type Options struct {
	// Remote gives access to the peers.
	Remote Remote
	// Stdin and Stdout are the terminal; nil means os.Stdin/os.Stdout.
	Stdin  io.ReadCloser
	Stdout io.Writer
	// Terminal says Stdout is a terminal: progress is drawn as bars.
	Terminal bool
	// HistoryFile keeps the command history between runs ("" for none).
	HistoryFile string
	// Timeout bounds connecting and each listing; 0 means 15 seconds.
	Timeout time.Duration
	// Banner is printed once at start.
	Banner string
}

// Banner is the greeting: how to use the shell, and where it finds peers.
func Banner(lan, discord bool) string {
	b := "dsftp shell: type help for the commands, Tab to complete, Ctrl-D to leave."
	if lan {
		b += "\nFinding peers on the local network; list_peers shows them as they arrive."
	}
	if discord {
		b += "\nFinding peers through Discord; list_peers shows them as they arrive."
	}
	return b
}

// Shell is one interactive session.
type Shell struct {
	opts  Options
	out   io.Writer
	peer  string          // connected peer, "" when none
	src   download.Source // its share
	cwd   string          // remote directory, absolute
	lwd   string          // local directory
	rl    *readline.Instance
	mu    sync.Mutex
	abort context.CancelFunc // cancels the running command
	quit  bool
}

// New makes a shell; Run starts it.
func New(opts Options) (*Shell, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	lwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("local working directory: %w", err)
	}
	s := &Shell{opts: opts, cwd: "/", lwd: lwd}
	return s, nil
}

// Interrupt cancels the running command (Ctrl-C while a get runs). At the
// prompt, readline handles Ctrl-C itself by clearing the line.
func (s *Shell) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abort != nil {
		s.abort()
	}
}

// Run reads and runs commands until exit, Ctrl-D or ctx ends.
func (s *Shell) Run(ctx context.Context) error {
	cfg := &readline.Config{
		Prompt:          s.prompt(),
		HistoryFile:     s.opts.HistoryFile,
		AutoComplete:    &completer{s: s, ctx: ctx},
		InterruptPrompt: "^C",
		EOFPrompt:       "exit",
		Stdout:          s.opts.Stdout,
		Stderr:          s.opts.Stdout,
	}
	if s.opts.Stdin != nil {
		cfg.Stdin = s.opts.Stdin
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return fmt.Errorf("start line editor: %w", err)
	}
	defer rl.Close()
	s.rl = rl
	s.out = rl.Stdout()
	if s.opts.Banner != "" {
		fmt.Fprintln(s.out, s.opts.Banner)
	}
	stop := context.AfterFunc(ctx, func() { rl.Close() })
	defer stop()
	for !s.quit {
		rl.SetPrompt(s.prompt())
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			continue
		case err == io.EOF:
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.Exec(ctx, line)
	}
	return nil
}

func (s *Shell) prompt() string {
	if s.peer == "" {
		return "dsftp> "
	}
	return fmt.Sprintf("dsftp %s:%s> ", s.peer, s.cwd)
}

// command is one shell command.
type command struct {
	name  string
	args  string // usage of the arguments
	help  string
	run   func(s *Shell, ctx context.Context, args []string) error
	needs bool // needs a connected peer
}

var commands []command

func init() {
	commands = []command{
		{name: "help", args: "[command]", help: "show the commands, or the help of one", run: (*Shell).cmdHelp},
		{name: "list_peers", help: "list the peers found so far", run: (*Shell).cmdListPeers},
		{name: "connect", args: "[peer]", help: "connect to a peer (the only one when there is just one)", run: (*Shell).cmdConnect},
		{name: "disconnect", help: "close the connection to the current peer", run: (*Shell).cmdDisconnect},
		{name: "ls", args: "[-l] [path]", help: "list a remote directory; -l shows mode, size and time", run: (*Shell).cmdLs, needs: true},
		{name: "cd", args: "[directory]", help: "change the remote directory (to / without argument)", run: (*Shell).cmdCd, needs: true},
		{name: "pwd", help: "print the peer and remote directory", run: (*Shell).cmdPwd, needs: true},
		{name: "get", args: "[-r] [-f] [--sha256] path [local]", help: "download a file (-r: a directory) into the local directory; resumes interrupted downloads, -f overwrites", run: (*Shell).cmdGet, needs: true},
		{name: "lcd", args: "[directory]", help: "change the local directory (to your home without argument)", run: (*Shell).cmdLcd},
		{name: "lpwd", help: "print the local directory", run: (*Shell).cmdLpwd},
		{name: "lls", args: "[-l] [path]", help: "list a local directory", run: (*Shell).cmdLls},
		{name: "exit", help: "leave the shell (also quit, Ctrl-D)", run: (*Shell).cmdExit},
	}
}

func lookup(name string) (command, bool) {
	if name == "quit" {
		name = "exit"
	}
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func commandNames() []string {
	names := make([]string, 0, len(commands)+1)
	for _, c := range commands {
		names = append(names, c.name)
	}
	return append(names, "quit")
}

// Exec runs one command line and prints its output or a one-line error.
func (s *Shell) Exec(ctx context.Context, line string) {
	if s.out == nil {
		s.out = s.opts.Stdout
	}
	words, err := split(line)
	if err != nil {
		fmt.Fprintf(s.out, "error: %v: close the quote or escape it with a backslash\n", err)
		return
	}
	if len(words) == 0 {
		return
	}
	c, ok := lookup(words[0])
	if !ok {
		msg := fmt.Sprintf("unknown command %s", quote(words[0]))
		if near, ok := Closest(words[0], commandNames()); ok {
			msg += fmt.Sprintf("; did you mean %s?", near)
		} else {
			msg += "; type help for the list"
		}
		fmt.Fprintln(s.out, "error: "+msg)
		return
	}
	if c.needs && s.peer == "" {
		fmt.Fprintf(s.out, "error: %s: not connected: use connect PEER (list_peers shows who is there)\n", c.name)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.abort = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.abort = nil
		s.mu.Unlock()
		cancel()
	}()
	if err := c.run(s, ctx, words[1:]); err != nil {
		fmt.Fprintf(s.out, "error: %s: %s\n", c.name, oneLine(err))
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// resolve makes a remote path absolute against the current directory.
func (s *Shell) resolve(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Join(s.cwd, p)
}

func (s *Shell) cmdHelp(ctx context.Context, args []string) error {
	if len(args) > 0 {
		c, ok := lookup(args[0])
		if !ok {
			return fmt.Errorf("no command %s", quote(args[0]))
		}
		fmt.Fprintf(s.out, "%s %s\n  %s\n", c.name, c.args, c.help)
		return nil
	}
	fmt.Fprintln(s.out, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(s.out, "  %-34s %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprintln(s.out, "Tab completes commands, peers and paths. Ctrl-C stops a running get; Ctrl-D exits.")
	return nil
}

// flags splits single-letter flags (-l, -rf) and long ones from operands.
func flags(args []string, allowed string, long ...string) (set map[string]bool, rest []string, err error) {
	set = map[string]bool{}
	for i, a := range args {
		switch {
		case a == "--":
			return set, append(rest, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			if !contains(long, a[2:]) {
				return nil, nil, fmt.Errorf("unknown option %s", a)
			}
			set[a[2:]] = true
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, r := range a[1:] {
				if !strings.ContainsRune(allowed, r) {
					return nil, nil, fmt.Errorf("unknown option -%c", r)
				}
				set[string(r)] = true
			}
		default:
			rest = append(rest, a)
		}
	}
	return set, rest, nil
}

func (s *Shell) cmdExit(ctx context.Context, args []string) error {
	s.quit = true
	return nil
}
