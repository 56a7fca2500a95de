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

// Limits of the name book. A line is at most about 128 bytes (a 64-byte
// name, a 50-byte key fingerprint, a time), so a full book is a file of
// at most 512 KiB and about 1 MiB of memory.
const (
	// MaxKnownNames bounds the names remembered. A full book remembers no
	// newcomer (it keeps a working name for the run) until a name ages
	// out: names go only by age, so a flood of new keys never pushes out
	// a name's owner.
	MaxKnownNames = 4096
	// KnownNameTTL is how long a name stays with a key that is not seen:
	// after that, it is forgotten and its first new claimant takes it.
	KnownNameTTL = 90 * 24 * time.Hour
	// MaxNewNamesPerOrigin bounds the names one origin (the Discord user
	// that posted the adverts, or the LAN address they came from) adds to
	// the book per NewNameWindow. One origin thus holds at most
	// 8 × 91 = 728 names within the TTL, far from filling the book.
	MaxNewNamesPerOrigin = 8
	// NewNameWindow is the window of MaxNewNamesPerOrigin.
	NewNameWindow = 24 * time.Hour
	// maxOrigins bounds the origins counted in one window (a LAN host can
	// send from many addresses); beyond it, new origins add no names
	// until the window of some ends.
	maxOrigins = 1024
	// maxNameBookBytes bounds what is read of the file.
	maxNameBookBytes = 1 << 20
	// pruneEvery spaces the scans for aged-out names of a full book, so
	// that a flood of newcomers costs one scan per interval.
	pruneEvery = time.Minute
)

// Why a name was not remembered; the peer keeps a working name for the
// run.
var (
	ErrNameBookFull    = errors.New("the name book is full")
	ErrTooManyNewNames = errors.New("too many new names from one origin")
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

	mu       sync.Mutex
	byName   map[string]knownName
	savedAt  time.Time // when the file was last written
	prunedAt time.Time // when aged-out names were last dropped
	origins  map[string]originCount
}

type knownName struct {
	id   string
	seen time.Time
}

// originCount is how many names one origin added since start.
type originCount struct {
	start time.Time
	n     int
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
// Malformed lines and names unseen for KnownNameTTL are skipped; of a
// file longer than MaxKnownNames (edited by hand), the most recently seen
// are kept.
func OpenNameBook(path string) (*NameBook, error) {
	return openNameBook(path, time.Now)
}

func openNameBook(path string, now func() time.Time) (*NameBook, error) {
	b := &NameBook{path: path, now: now, byName: map[string]knownName{}, origins: map[string]originCount{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known names %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxNameBookBytes))
	t := now()
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
		if t.Sub(seen) > KnownNameTTL {
			continue
		}
		b.byName[parts[0]] = knownName{id: parts[1], seen: seen}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read known names %s: %w", path, err)
	}
	b.keepNewestLocked()
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

// Seen records that id holds name now, heard from origin (see
// MaxNewNamesPerOrigin), unless the name is another key's. A new name is
// written to the file at once, a known one's time about daily. A new
// name is not remembered when the book is full or origin added too many
// lately: the error says so (ErrNameBookFull, ErrTooManyNewNames). Other
// errors are failed writes (the book in memory is updated anyway).
func (b *NameBook) Seen(name, id, origin string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	old, known := b.byName[name]
	live := known && now.Sub(old.seen) <= KnownNameTTL
	switch {
	case live && old.id != id:
		return nil // another key's name: a stranger holding it gains nothing
	case live:
		b.byName[name] = knownName{id: id, seen: now}
		if now.Sub(b.savedAt) < 24*time.Hour {
			return nil
		}
		return b.saveLocked(now)
	}
	if err := b.admitLocked(name, origin, known, now); err != nil {
		return err
	}
	b.byName[name] = knownName{id: id, seen: now}
	return b.saveLocked(now)
}

// admitLocked decides whether origin may add name now, and counts it.
// inBook says name holds an aged-out line it can take over.
func (b *NameBook) admitLocked(name, origin string, inBook bool, now time.Time) error {
	if !inBook && len(b.byName) >= MaxKnownNames {
		b.pruneLocked(now)
		if len(b.byName) >= MaxKnownNames {
			return fmt.Errorf("remember name %q: %w (%d names seen within %d days; the peer keeps it while listed)", name, ErrNameBookFull, MaxKnownNames, KnownNameTTL/(24*time.Hour))
		}
	}
	c, ok := b.origins[origin]
	if !ok && len(b.origins) >= maxOrigins {
		for o, c := range b.origins {
			if now.Sub(c.start) >= NewNameWindow {
				delete(b.origins, o)
			}
		}
		if len(b.origins) >= maxOrigins {
			return fmt.Errorf("remember name %q: %w (new names from %d sources within %.0f h; the peer keeps it while listed)", name, ErrTooManyNewNames, maxOrigins, NewNameWindow.Hours())
		}
	}
	if !ok || now.Sub(c.start) >= NewNameWindow {
		c = originCount{start: now}
	}
	if c.n >= MaxNewNamesPerOrigin {
		return fmt.Errorf("remember name %q: %w (%s added %d within %.0f h; the peer keeps it while listed)", name, ErrTooManyNewNames, origin, c.n, NewNameWindow.Hours())
	}
	c.n++
	b.origins[origin] = c
	return nil
}

// pruneLocked drops the names unseen for KnownNameTTL, at most every
// pruneEvery.
func (b *NameBook) pruneLocked(now time.Time) {
	if now.Sub(b.prunedAt) < pruneEvery {
		return
	}
	b.prunedAt = now
	for n, k := range b.byName {
		if now.Sub(k.seen) > KnownNameTTL {
			delete(b.byName, n)
		}
	}
}

// keepNewestLocked keeps the MaxKnownNames most recently seen names of a
// file that holds more.
func (b *NameBook) keepNewestLocked() {
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
