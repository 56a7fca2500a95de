package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

const (
	// IgnoreFile in the share's root lists paths not to share, in
	// gitignore syntax.
	IgnoreFile = ".dsftpignore"
	// maxIgnoreFile bounds what is read of it; a larger file is an error
	// rather than a silently partial set of rules.
	maxIgnoreFile = 1 << 20
	// ignoreRecheck is how often the file is looked at for changes.
	ignoreRecheck = time.Second
)

// ignoreRules is the share's .dsftpignore, re-read when it changes. The
// matching is go-git's gitignore implementation.
type ignoreRules struct {
	root *os.Root
	log  *slog.Logger

	next  atomic.Int64 // unix nanoseconds of the next look at the file
	rules atomic.Pointer[loadedRules]

	mu sync.Mutex // serialises reloads
}

// loadedRules is one reading of the file.
type loadedRules struct {
	stamp   string // version of the file read: size and mtime; "" if absent
	matcher gitignore.Matcher
	n       int
}

// newIgnoreRules reads the file once; an unreadable file is an error, so
// that a share never starts without the exclusions its owner wrote.
func newIgnoreRules(root *os.Root, log *slog.Logger) (*ignoreRules, error) {
	r := &ignoreRules{root: root, log: log}
	lr, err := r.read()
	if err != nil {
		return nil, err
	}
	r.rules.Store(lr)
	r.next.Store(time.Now().Add(ignoreRecheck).UnixNano())
	return r, nil
}

// Count is the number of rules in force.
func (r *ignoreRules) Count() int {
	if r == nil {
		return 0
	}
	return r.current().n
}

// match reports whether rel (a directory when isDir) is excluded by the
// rules themselves; callers check the directories above it.
func (r *ignoreRules) match(rel string, isDir bool) bool {
	if r == nil || rel == "." {
		return false
	}
	lr := r.current()
	return lr.matcher != nil && lr.matcher.Match(split(rel), isDir)
}

// current returns the rules, re-reading the file when it changed. If the
// file turns unreadable, the rules read last stay in force.
func (r *ignoreRules) current() *loadedRules {
	now := time.Now().UnixNano()
	if now < r.next.Load() {
		return r.rules.Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now < r.next.Load() {
		return r.rules.Load()
	}
	r.next.Store(now + int64(ignoreRecheck))
	old := r.rules.Load()
	if stamp, err := r.stamp(); err == nil && stamp == old.stamp {
		return old
	}
	lr, err := r.read()
	if err != nil {
		r.log.Error("keeping the previous ignore rules", "err", err)
		return old
	}
	r.log.Info("ignore rules reloaded", "file", IgnoreFile, "rules", lr.n)
	r.rules.Store(lr)
	return lr
}

// reload re-reads the file now, whatever its stamp says (an edit that
// kept its size within the file system's time granularity looks
// unchanged). If it is unreadable, the rules read last stay in force.
func (r *ignoreRules) reload() (int, error) {
	if r == nil {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lr, err := r.read()
	if err != nil {
		return r.rules.Load().n, err
	}
	r.rules.Store(lr)
	r.next.Store(time.Now().Add(ignoreRecheck).UnixNano())
	return lr.n, nil
}

// stamp identifies the file's current version without reading it.
func (r *ignoreRules) stamp() (string, error) {
	fi, err := r.root.Lstat(IgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano()), nil
}

// read loads the file; a missing file is no rules.
func (r *ignoreRules) read() (*loadedRules, error) {
	stamp, err := r.stamp()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", IgnoreFile, err)
	}
	if stamp == "" {
		return &loadedRules{}, nil
	}
	// O_NOATIME: reading the rules leaves the share as it was.
	flags := os.O_RDONLY | oNoFollow | oNonblock
	f, err := r.root.OpenFile(IgnoreFile, flags|oNoatime, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = r.root.OpenFile(IgnoreFile, flags, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s in the share: %w (it must be a plain readable file)", IgnoreFile, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s in the share: not a regular file", IgnoreFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIgnoreFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in the share: %w", IgnoreFile, err)
	}
	if len(b) > maxIgnoreFile {
		return nil, fmt.Errorf("read %s in the share: larger than %d bytes", IgnoreFile, maxIgnoreFile)
	}
	ps := parseIgnore(b)
	return &loadedRules{stamp: stamp, matcher: gitignore.NewMatcher(ps), n: len(ps)}, nil
}

// parseIgnore splits the file into patterns: blank lines and comments
// ("#" first) are skipped, as git does.
func parseIgnore(b []byte) []gitignore.Pattern {
	var ps []gitignore.Pattern
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxIgnoreFile)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, nil))
	}
	return ps
}
