package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errSecret is why an open of a file that is never served fails; the
// client sees "no such file", as for a hidden one.
var errSecret = errors.New("never shared: holds a private key or a dsftp secret")

// secretGuard keeps out files that are never served: dsftp's own secrets
// (Options.SecretFiles) and copies of them, files in the secret
// directories (Options.SecretDirs) under any name, and anything holding
// a private key (see scanFile). Listings leave them out (contentWhy) and
// every open checks the opened file again (check).
type secretGuard struct {
	ids      secretIDs
	log      *refusalLog
	verdicts *verdictCache

	// noatime is cleared after the kernel refuses O_NOATIME once.
	noatime atomic.Bool
}

func newSecretGuard(files, dirs []string, log *refusalLog) *secretGuard {
	g := &secretGuard{ids: secretIDs{files: files, dirs: dirs, log: log.log}, log: log, verdicts: newVerdictCache()}
	g.noatime.Store(true)
	g.ids.get() // the first look-up now, not on a client's first open
	return g
}

// check is called with every file opened for a client, before a byte of
// it is sent: the listing's verdict may be older than the file. rel is
// for the log line.
func (g *secretGuard) check(f *os.File, fi os.FileInfo, rel string) error {
	set := g.ids.get()
	why := set.identity(fi)
	if why == "" {
		var err error
		if why, err = scanFile(f, fi.Size(), set.copyOf); err != nil {
			return err
		}
	}
	if why != "" {
		g.log.refused(rel, why)
		return errSecret
	}
	return nil
}

// listScanMax is the largest file whose content a listing or lookup
// checks: keys are small, and a listing of big files (a photo folder)
// must not read each one. A bigger file holding a key is still refused
// when opened (check), only listed.
const listScanMax = keyScanBytes

// contentWhy reports why the regular file rel in root, as fi describes
// it, is never served, or "". The content verdict is remembered (see
// verdictCache); a file that cannot be opened or read is not judged
// here, its open fails anyway.
func (g *secretGuard) contentWhy(root *os.Root, rel string, fi os.FileInfo) string {
	set := g.ids.get()
	if why := set.identity(fi); why != "" {
		return why
	}
	if fi.Size() == 0 || fi.Size() > listScanMax {
		return ""
	}
	v, ok := g.verdicts.get(fi)
	if !ok {
		var err error
		if v, err = g.scan(root, rel, fi); err != nil {
			return ""
		}
	}
	if v.why != "" {
		return v.why
	}
	return set.copyOfSum(v)
}

// scan opens rel through root as the handlers do (no atime update, no
// final symlink, no blocking on a FIFO swapped in) and scans it.
func (g *secretGuard) scan(root *os.Root, rel string, fi os.FileInfo) (verdict, error) {
	f, err := g.open(root, rel)
	if err != nil {
		return verdict{}, err
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return verdict{}, err
	}
	if !os.SameFile(fi, ofi) {
		return verdict{}, errChanged
	}
	start := time.Now()
	v := verdict{tlen: -1}
	why, err := scanFile(f, ofi.Size(), func(b []byte) string {
		if int64(len(b)) == ofi.Size() && len(b) <= maxSecretContent+scanMargin {
			v.tlen, v.sum = trimmedSum(b)
		}
		return ""
	})
	if err != nil {
		return verdict{}, err
	}
	g.verdicts.scans.Add(1)
	v.why = why
	g.verdicts.put(ofi, v, start)
	return v, nil
}

func (g *secretGuard) open(root *os.Root, rel string) (*os.File, error) {
	flags := os.O_RDONLY | oNonblock | oNoFollow
	if oNoatime != 0 && g.noatime.Load() {
		f, err := root.OpenFile(rel, flags|oNoatime, 0)
		if !errors.Is(err, syscall.EPERM) {
			return f, err
		}
		g.noatime.Store(false) // not the owner: see View.openNoAtime
	}
	return root.OpenFile(rel, flags, 0)
}

// trimmedSum is the length and the first 64 bits of the SHA-256 of b
// with surrounding space trimmed: what copyOfSum compares.
func trimmedSum(b []byte) (int32, uint64) {
	t := bytes.TrimSpace(b)
	s := sha256.Sum256(t)
	return int32(len(t)), binary.BigEndian.Uint64(s[:8])
}

// copyOfSum is copyOf for a remembered verdict. 64 bits of the hash
// make a chance match (which would only leave a file out) negligible.
func (set *secretSet) copyOfSum(v verdict) string {
	if v.tlen <= 0 {
		return ""
	}
	for _, c := range set.sums[int(v.tlen)] {
		if binary.BigEndian.Uint64(c.sum[:8]) == v.sum {
			return c.why
		}
	}
	return ""
}

// refusalLog logs what is kept from clients; the program's log limiter
// sums up a flood of them per reason ("why").
type refusalLog struct {
	log *slog.Logger

	mu    sync.Mutex
	named map[string]bool // left-out paths already logged
}

func (l *refusalLog) refused(rel, why string) {
	l.log.Warn("refused to serve a file", "path", clientPath(rel), "why", why)
}

// maxNamed bounds the left-out paths remembered as logged; past it they
// are forgotten and may be named again.
const maxNamed = 4096

// leftOut names a file left out of a listing, once per path and reason:
// a directory is listed again and again.
func (l *refusalLog) leftOut(rel, why string) {
	k := rel + "\x00" + why
	l.mu.Lock()
	seen := l.named[k]
	if !seen {
		if l.named == nil || len(l.named) >= maxNamed {
			l.named = map[string]bool{}
		}
		l.named[k] = true
	}
	l.mu.Unlock()
	if seen {
		return
	}
	l.log.Info("left a file out of the share", "path", clientPath(rel), "why", why)
}
