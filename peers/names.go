package peers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the name book.
const (
	// MaxKnownNames bounds the names remembered; the least recently seen
	// go first.
	MaxKnownNames = 1024
	// KnownNameTTL is how long a name stays with a key that is not seen:
	// after that, its first new claimant takes it.
	KnownNameTTL = 90 * 24 * time.Hour
	// maxNameBookBytes bounds what is read of the file.
	maxNameBookBytes = 1 << 20
)

// NameBook remembers which key (peer ID) first held each display name,
// like ssh's known_hosts: trust on first use. The registry gives a known
// name back to its key even when a stranger claimed it meanwhile (while
// its owner restarted, say), and the stranger gets a suffixed name. The
// book is a small text file, one "NAME<TAB>ID<TAB>LAST-SEEN-UNIX" per
// line, mode 0600. A nil *NameBook remembers nothing.
type NameBook struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	byName  map[string]knownName
	savedAt time.Time // when the file was last written
}

type knownName struct {
	id   string
	seen time.Time
}

// DefaultNameBookPath is $XDG_STATE_HOME/dsftp/known_names, or
// ~/.local/state/dsftp/known_names.
func DefaultNameBookPath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the state directory for known names: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "dsftp", "known_names"), nil
}

// OpenNameBook reads the book at path; a missing file is an empty book.
// Malformed lines are skipped; at most MaxKnownNames are kept.
func OpenNameBook(path string) (*NameBook, error) {
	b := &NameBook{path: path, now: time.Now, byName: map[string]knownName{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known names %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxNameBookBytes))
	now := b.now()
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 3 || parts[0] == "" || SanitizeName(parts[0]) != parts[0] || !strings.HasPrefix(parts[1], "SHA256:") {
			continue
		}
		secs, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			continue
		}
		seen := time.Unix(secs, 0)
		if now.Sub(seen) > KnownNameTTL {
			continue
		}
		b.byName[parts[0]] = knownName{id: parts[1], seen: seen}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read known names %s: %w", path, err)
	}
	b.trimLocked()
	return b, nil
}

// Owner returns the key that holds name, if any.
func (b *NameBook) Owner(name string) (string, bool) {
	if b == nil {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.byName[name]
	if !ok || b.now().Sub(k.seen) > KnownNameTTL {
		return "", false
	}
	return k.id, true
}

// Seen records that id holds name now, unless the name is another key's:
// a new name is written to the file
// at once, a known one's time about daily. It returns the error of a
// failed write (the book in memory is updated anyway).
func (b *NameBook) Seen(name, id string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	old, known := b.byName[name]
	if known && old.id != id && now.Sub(old.seen) <= KnownNameTTL {
		return nil // another key's name: a stranger holding it gains nothing
	}
	b.byName[name] = knownName{id: id, seen: now}
	if known && old.id == id && now.Sub(b.savedAt) < 24*time.Hour {
		return nil
	}
	b.trimLocked()
	return b.saveLocked(now)
}

// trimLocked keeps the MaxKnownNames most recently seen names.
func (b *NameBook) trimLocked() {
	if len(b.byName) <= MaxKnownNames {
		return
	}
	names := make([]string, 0, len(b.byName))
	for n := range b.byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return b.byName[names[i]].seen.After(b.byName[names[j]].seen) })
	for _, n := range names[MaxKnownNames:] {
		delete(b.byName, n)
	}
}

// saveLocked writes the book, sorted by name, through a temporary file.
func (b *NameBook) saveLocked(now time.Time) error {
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return fmt.Errorf("save known names: %w", err)
	}
	names := make([]string, 0, len(b.byName))
	for n := range b.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		k := b.byName[n]
		fmt.Fprintf(&sb, "%s\t%s\t%d\n", n, k.id, k.seen.Unix())
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.path), ".known_names-*")
	if err != nil {
		return fmt.Errorf("save known names: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(sb.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("save known names %s: %w", b.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save known names %s: %w", b.path, err)
	}
	if err := os.Rename(tmp.Name(), b.path); err != nil {
		return fmt.Errorf("save known names %s: %w", b.path, err)
	}
	b.savedAt = now
	return nil
}
