package shell

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// The commands that work on the local directory.

// local makes a local path absolute against the local directory.
func (s *Shell) local(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = home + p[1:]
		}
	}
	if strings.HasPrefix(p, "/") {
		return p
	}
	abs := path.Join(s.lwd, p)
	if strings.HasSuffix(p, "/") {
		abs += "/"
	}
	return abs
}

func (s *Shell) cmdLcd(ctx context.Context, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("too many arguments: lcd DIRECTORY (quote names with spaces)")
	}
	dir := "~"
	if len(args) == 1 {
		dir = args[0]
	}
	dir = path.Clean(s.local(dir))
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, download.Friendly(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	s.lwd = dir
	return nil
}

func (s *Shell) cmdLpwd(ctx context.Context, args []string) error {
	fmt.Fprintln(s.out, s.lwd)
	return nil
}

func (s *Shell) cmdLls(ctx context.Context, args []string) error {
	f, rest, err := flags(args, "l")
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return fmt.Errorf("too many arguments: lls [-l] [PATH]")
	}
	p := s.lwd
	if len(rest) == 1 {
		p = s.local(rest[0])
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, download.Friendly(err))
	}
	list := []os.FileInfo{fi}
	if fi.IsDir() {
		entries, err := os.ReadDir(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, download.Friendly(err))
		}
		list = list[:0]
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				list = append(list, info)
			}
		}
	}
	printList(s.out, list, f["l"])
	return nil
}
