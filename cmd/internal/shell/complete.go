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
	if len(p.words) > 0 && strings.HasPrefix(p.cur, "-") && p.quote == 0 {
		return nil, 0
	}
	kind := c.kindOf(p.words)
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
		if word, ok := complete(cand, base, p.quote); ok {
			out = append(out, []rune(word))
		}
	}
	return out, p.raw
}

// kindOf says what the word being typed after words is: a command, a peer,
// a remote or local path (or directory), or nothing to complete.
func (c *completer) kindOf(words []string) int {
	if len(words) == 0 {
		return kCommand
	}
	var operands int
	for _, w := range words[1:] {
		if !strings.HasPrefix(w, "-") {
			operands++
		}
	}
	connected := c.s.peer != ""
	switch {
	case words[0] == "connect" && operands == 0:
		return kPeer
	case (words[0] == "ls" || words[0] == "get") && connected && operands == 0:
		return kRemote
	case words[0] == "get" && operands == 1:
		return kLocal
	case words[0] == "cd" && connected && operands == 0:
		return kRemoteDir
	case words[0] == "lcd" && operands == 0:
		return kLocalDir
	case words[0] == "lls" && operands == 0:
		return kLocal
	case words[0] == "help" && operands == 0:
		return kCommand
	}
	return kNone
}

// complete returns what to insert for the candidate cand when base is
// typed, or false when cand does not extend base. A trailing marker on
// cand says how to end the word: "/" keeps it open for the next
// component; "\x00" (a file or peer) closes the quote and adds a space.
func complete(cand, base string, quote rune) (string, bool) {
	name, term := cand, ""
	switch {
	case strings.HasSuffix(cand, "/"):
		name, term = cand[:len(cand)-1], "/"
	case strings.HasSuffix(cand, "\x00"):
		name, term = cand[:len(cand)-1], string(quote)+" "
		if quote == 0 {
			term = " "
		}
	case strings.HasSuffix(cand, " "):
		name, term = cand[:len(cand)-1], " "
	}
	if !strings.HasPrefix(name, base) {
		return "", false
	}
	return escape(name[len(base):], quote) + term, true
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
