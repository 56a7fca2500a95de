package shell

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// completer implements readline.AutoCompleter: commands first, then peer
// names for connect, remote paths for ls/cd/get, local paths for
// lcd/lls and get's second operand. Candidates are escaped for the quote
// state of the word being typed, so names with spaces or quotes complete
// correctly whether the user quotes or escapes.
type completer struct {
	s   *Shell
	ctx context.Context
}

// kinds of things to complete
const (
	kNone = iota
	kCommand
	kPeer
	kRemote
	kRemoteDir
	kLocal
	kLocalDir
)

func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	p := parse(string(line[:pos]))
	kind := kNone
	if len(p.words) == 0 {
		kind = kCommand
	} else {
		var operands int
		for _, w := range p.words[1:] {
			if !strings.HasPrefix(w, "-") {
				operands++
			}
		}
		if strings.HasPrefix(p.cur, "-") && p.quote == 0 {
			return nil, 0
		}
		switch p.words[0] {
		case "connect":
			if operands == 0 {
				kind = kPeer
			}
		case "ls", "get":
			if c.s.peer != "" && operands == 0 {
				kind = kRemote
			} else if p.words[0] == "get" && operands == 1 {
				kind = kLocal
			}
		case "cd":
			if c.s.peer != "" && operands == 0 {
				kind = kRemoteDir
			}
		case "lcd":
			if operands == 0 {
				kind = kLocalDir
			}
		case "lls":
			if operands == 0 {
				kind = kLocal
			}
		case "help":
			if operands == 0 {
				kind = kCommand
			}
		}
	}

	var cands []string // full names that extend p.cur's last component
	var base string    // the part of p.cur those names replace
	switch kind {
	case kCommand:
		base = p.cur
		for _, n := range commandNames() {
			cands = append(cands, n+" ")
		}
	case kPeer:
		base = p.cur
		for _, n := range c.s.peerNames() {
			cands = append(cands, n+"\x00")
		}
	case kRemote, kRemoteDir:
		dir, b := splitDir(p.cur)
		base = b
		cands = c.remoteNames(dir, kind == kRemoteDir)
	case kLocal, kLocalDir:
		dir, b := splitDir(p.cur)
		base = b
		cands = c.localNames(dir, kind == kLocalDir)
	default:
		return nil, 0
	}
	sort.Strings(cands)
	var out [][]rune
	for _, cand := range cands {
		name, term := cand, ""
		// A trailing marker says how to end the word: "/" keeps it open
		// for the next component; "\x00" (a file or peer) closes the
		// quote and adds a space.
		switch {
		case strings.HasSuffix(cand, "/"):
			name, term = cand[:len(cand)-1], "/"
		case strings.HasSuffix(cand, "\x00"):
			name, term = cand[:len(cand)-1], string(p.quote)+" "
			if p.quote == 0 {
				term = " "
			}
		case strings.HasSuffix(cand, " "):
			name, term = cand[:len(cand)-1], " "
		}
		if !strings.HasPrefix(name, base) {
			continue
		}
		out = append(out, []rune(escape(name[len(base):], p.quote)+term))
	}
	return out, p.raw
}

// splitDir splits a typed path into its directory part (with the slash)
// and the last component being typed.
func splitDir(typed string) (dir, base string) {
	i := strings.LastIndex(typed, "/")
	if i < 0 {
		return "", typed
	}
	return typed[:i+1], typed[i+1:]
}

// remoteNames lists the remote directory dir (relative to the current
// one) as completion candidates: directories end in "/", files in "\x00".
func (c *completer) remoteNames(dir string, dirsOnly bool) []string {
	s := c.s
	if s.src == nil {
		return nil
	}
	p := s.cwd
	if dir != "" {
		p = s.resolve(dir)
	}
	ctx, cancel := context.WithTimeout(c.ctx, min(s.opts.Timeout, 5*time.Second))
	defer cancel()
	list, err := s.src.ReadDir(ctx, p)
	if err != nil {
		return nil
	}
	var out []string
	for _, fi := range list {
		switch {
		case fi.IsDir():
			out = append(out, fi.Name()+"/")
		case !dirsOnly:
			out = append(out, fi.Name()+"\x00")
		}
	}
	return out
}

func (c *completer) localNames(dir string, dirsOnly bool) []string {
	p := c.s.lwd
	if dir != "" {
		p = c.s.local(dir)
	}
	entries, err := os.ReadDir(filepath.FromSlash(path.Clean(p)))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(p, e.Name())); err == nil {
				isDir = fi.IsDir()
			}
		}
		switch {
		case isDir:
			out = append(out, e.Name()+"/")
		case !dirsOnly:
			out = append(out, e.Name()+"\x00")
		}
	}
	return out
}
