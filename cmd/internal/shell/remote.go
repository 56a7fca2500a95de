package shell

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/chzyer/readline"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// The commands that work on the connected peer.

func (s *Shell) cmdListPeers(ctx context.Context, args []string) error {
	list := s.opts.Remote.Peers()
	if len(list) == 0 {
		fmt.Fprintln(s.out, "no peers yet")
	}
	for _, p := range list {
		mark := " "
		if p.Name == s.peer {
			mark = "*"
		}
		fmt.Fprintf(s.out, "%s %-20s %-22s %-8s %s\n", mark, p.Name, p.Addr, p.Source, p.Fingerprint)
	}
	if s.opts.Remote.Settling() {
		fmt.Fprintln(s.out, "(discovery is still running: more peers may still arrive)")
	}
	return nil
}

func (s *Shell) peerNames() []string {
	var names []string
	for _, p := range s.opts.Remote.Peers() {
		names = append(names, p.Name)
	}
	return names
}

func (s *Shell) cmdConnect(ctx context.Context, args []string) error {
	names := s.peerNames()
	var name string
	switch {
	case len(args) > 1:
		return fmt.Errorf("too many arguments: connect PEER (quote names with spaces)")
	case len(args) == 1:
		name = args[0]
	case len(names) == 1:
		name = names[0]
	case len(names) == 0:
		return fmt.Errorf("no peers yet; list_peers shows them as they arrive")
	default:
		return fmt.Errorf("which peer? connect one of: %s", strings.Join(quoteAll(names), ", "))
	}
	if !contains(names, name) {
		msg := fmt.Sprintf("unknown peer %s", quote(name))
		if near, ok := Closest(name, names); ok {
			return fmt.Errorf("%s; did you mean %s?", msg, quote(near))
		}
		return fmt.Errorf("%s; list_peers shows who is there", msg)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	src, err := s.opts.Remote.Connect(ctx, name)
	if err != nil {
		return err
	}
	if _, err := src.Stat(ctx, "/"); err != nil {
		return fmt.Errorf("%s: %w", name, download.Friendly(err))
	}
	if s.peer != "" && s.peer != name {
		s.opts.Remote.Disconnect(s.peer)
	}
	s.peer, s.src, s.cwd = name, src, "/"
	fmt.Fprintf(s.out, "connected to %s\n", name)
	return nil
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Shell) cmdDisconnect(ctx context.Context, args []string) error {
	if s.peer == "" {
		return fmt.Errorf("not connected")
	}
	s.opts.Remote.Disconnect(s.peer)
	fmt.Fprintf(s.out, "disconnected from %s\n", s.peer)
	s.peer, s.src, s.cwd = "", nil, "/"
	return nil
}

func (s *Shell) cmdPwd(ctx context.Context, args []string) error {
	fmt.Fprintf(s.out, "%s:%s\n", s.peer, s.cwd)
	return nil
}

func (s *Shell) cmdCd(ctx context.Context, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("too many arguments: cd DIRECTORY (quote names with spaces)")
	}
	dir := "/"
	if len(args) == 1 {
		dir = s.resolve(args[0])
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	fi, err := s.src.Stat(ctx, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, download.Friendly(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	s.cwd = dir
	return nil
}

func (s *Shell) cmdLs(ctx context.Context, args []string) error {
	f, rest, err := flags(args, "l")
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return fmt.Errorf("too many arguments: ls [-l] [PATH] (quote names with spaces)")
	}
	p := s.cwd
	if len(rest) == 1 {
		p = s.resolve(rest[0])
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	fi, err := s.src.Stat(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, download.Friendly(err))
	}
	list := []os.FileInfo{fi}
	if fi.IsDir() {
		list, err = s.src.ReadDir(ctx, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, download.Friendly(err))
		}
	}
	printList(s.out, list, f["l"])
	return nil
}

// printList prints names sorted, directories with a trailing slash; long
// adds mode, size and modification time.
func printList(w io.Writer, list []os.FileInfo, long bool) {
	sort.Slice(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
	for _, fi := range list {
		name := fi.Name()
		if fi.IsDir() {
			name += "/"
		}
		if long {
			fmt.Fprintf(w, "%s %12d %s %s\n", fi.Mode().String(), fi.Size(), fi.ModTime().Local().Format("2006-01-02 15:04"), name)
		} else {
			fmt.Fprintln(w, name)
		}
	}
}

func (s *Shell) cmdGet(ctx context.Context, args []string) error {
	f, rest, err := flags(args, "rf", "sha256")
	if err != nil {
		return err
	}
	if len(rest) == 0 || len(rest) > 2 {
		return fmt.Errorf("usage: get [-r] [-f] [--sha256] PATH [LOCAL] (quote names with spaces)")
	}
	dest := s.lwd + string(os.PathSeparator)
	if len(rest) == 2 {
		dest = s.local(rest[1])
	}
	remote := s.resolve(rest[0])
	var prog download.Progress = &download.Lines{W: s.out}
	if s.opts.Terminal {
		prog = download.NewBar(s.out, readline.GetScreenWidth)
	}
	start := time.Now()
	res, err := download.Get(ctx, s.src, remote, dest, download.Options{
		Recursive: f["r"],
		Force:     f["f"],
		SHA256:    f["sha256"],
		Origin:    s.opts.Remote.Origin(s.peer),
		RootName:  s.peer,
		Progress:  prog,
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; the .part file is kept: run the same get again to resume")
		}
		return err
	}
	if len(res.Files) > 1 {
		fmt.Fprintln(s.out, res.Summary(time.Since(start)))
	}
	return nil
}
