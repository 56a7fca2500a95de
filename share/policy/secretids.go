package policy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of the secret identities: how often they are looked up again
// (a host key may appear after the share starts, a key be added to
// ~/.ssh), how many entries the secret directories may have and how deep
// they are walked, and the largest secret file whose content is
// recognised in a copy.
const (
	secretRefresh    = 2 * time.Second
	maxSecretEntries = 4096
	maxSecretDepth   = 4
	maxSecretContent = 16 << 10
)

// defaultSecretDirs are the directories whose files are never served,
// hard links included: ~/.ssh, ~/.gnupg and dsftp's configuration
// directory ($XDG_CONFIG_HOME/dsftp, ~/.config/dsftp or the OS
// equivalent). A directory that cannot be found is left out.
func defaultSecretDirs() []string {
	var dirs []string
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".ssh"), filepath.Join(home, ".gnupg"))
	}
	if cfg, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(cfg, "dsftp"))
	}
	return dirs
}

// secretSet is one look-up of what is never served.
type secretSet struct {
	// ids are the secret files, by fileKey, and why each is secret.
	ids map[uint64][]secretID
	// sums are the SHA-256 of the secret files' contents, space trimmed,
	// by the trimmed length: a copy of the token file is refused too.
	sums  map[int][]secretSum
	taken time.Time
}

type secretID struct {
	fi  os.FileInfo
	why string
}

type secretSum struct {
	sum [sha256.Size]byte
	why string
}

// secretIDs keeps the current secretSet. Opens read it without a lock;
// the first open after it is stale starts a look-up in the background
// (at the entry bound one takes about 10 ms) and goes on with the old
// one, as do the others meanwhile.
type secretIDs struct {
	files []string // dsftp's secret files: token, host key
	dirs  []string // walked for files: ~/.ssh, ~/.gnupg, the config directory
	log   *slog.Logger

	cur        atomic.Pointer[secretSet]
	first      sync.Once
	refreshing atomic.Bool
	warnedCap  atomic.Bool
}

// get returns the current set, and refreshes it when stale.
func (s *secretIDs) get() *secretSet {
	s.first.Do(func() { s.cur.Store(s.lookup()) })
	set := s.cur.Load()
	if time.Since(set.taken) >= secretRefresh && s.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer s.refreshing.Store(false)
			s.cur.Store(s.lookup())
		}()
	}
	return set
}

// lookup stats the secret files and walks the secret directories.
func (s *secretIDs) lookup() *secretSet {
	set := &secretSet{ids: map[uint64][]secretID{}, sums: map[int][]secretSum{}, taken: time.Now()}
	add := func(fi os.FileInfo, why string) {
		k := fileKey(fi)
		set.ids[k] = append(set.ids[k], secretID{fi, why})
	}
	for _, p := range s.files {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		add(fi, "dsftp secret")
		if fi.Size() <= maxSecretContent {
			if b, err := readSecret(p); err == nil {
				if t := bytes.TrimSpace(b); len(t) > 0 {
					set.sums[len(t)] = append(set.sums[len(t)], secretSum{sha256.Sum256(t), "copy of a dsftp secret"})
				}
			}
		}
	}
	entries := 0
	for _, d := range s.dirs {
		entries = s.walk(d, entries, add)
	}
	return set
}

// readSecret reads a secret file of up to maxSecretContent bytes. It is
// read every secretRefresh: O_NOATIME leaves its access time alone (the
// file may be in the share), O_NONBLOCK a FIFO swapped in from blocking.
func readSecret(p string) ([]byte, error) {
	flags := os.O_RDONLY | oNonblock
	f, err := os.OpenFile(p, flags|oNoatime, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(p, flags, 0)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxSecretContent))
}

// walk adds the regular files below dir (symlinks to files followed, to
// directories not) and returns the entry count so far.
func (s *secretIDs) walk(dir string, entries int, add func(os.FileInfo, string)) int {
	real, err := filepath.EvalSymlinks(dir) // ~/.ssh may be a link into a dotfiles repository
	if err != nil {
		return entries
	}
	why := "same file as one in " + dir
	_ = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: nothing to serve from it either
		}
		if entries++; entries > maxSecretEntries {
			if !s.warnedCap.Swap(true) {
				s.log.Warn("too many files in the secret directories; hard links to the rest are not recognised",
					"max", maxSecretEntries, "dir", dir)
			}
			return filepath.SkipAll
		}
		if d.IsDir() {
			if p != real && strings.Count(p[len(real):], string(filepath.Separator)) >= maxSecretDepth {
				return filepath.SkipDir
			}
			return nil
		}
		var fi os.FileInfo
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err = os.Stat(p)
		} else if d.Type().IsRegular() {
			fi, err = d.Info()
		}
		if err == nil && fi != nil && fi.Mode().IsRegular() {
			add(fi, why)
		}
		return nil
	})
	return entries
}

// identity reports why fi is a secret file, or "".
func (set *secretSet) identity(fi os.FileInfo) string {
	for _, id := range set.ids[fileKey(fi)] {
		if os.SameFile(fi, id.fi) {
			return id.why
		}
	}
	return ""
}

// copyOf reports why b, a whole file, holds the content of a secret file
// (but for surrounding space), or "".
func (set *secretSet) copyOf(b []byte) string {
	if len(set.sums) == 0 || len(b) > maxSecretContent+scanMargin {
		return ""
	}
	t := bytes.TrimSpace(b)
	cands := set.sums[len(t)]
	if len(cands) == 0 {
		return ""
	}
	sum := sha256.Sum256(t)
	for _, c := range cands {
		if c.sum == sum {
			return c.why
		}
	}
	return ""
}
