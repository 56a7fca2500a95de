package share

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// keyScanBytes is how much of a file is searched for a private key when
// it is opened. 64 KiB holds a TLS bundle's certificate chain before its
// key, and costs one read from the page cache.
const keyScanBytes = 64 << 10

// errSecret is what a client sees for a file that is never served.
var errSecret = fmt.Errorf("file holds a private key or a dsftp secret and is never shared: %w", sftp.ErrSSHFxPermissionDenied)

// keyMarkers are the byte strings that begin a private key in the formats
// people keep on disk. The PEM ones are checked to start a "-----BEGIN"
// line (see holdsPrivateKey).
var (
	pemKeyEnd   = []byte("PRIVATE KEY") // "RSA PRIVATE KEY-----", "PGP PRIVATE KEY BLOCK-----", ...
	pemBegin    = []byte("-----BEGIN ")
	puttyKey    = []byte("PuTTY-User-Key-File-")
	opensshBlob = []byte("openssh-key-v1\x00") // the decoded OpenSSH format
)

// holdsPrivateKey reports whether b holds the start of a private key: a
// PEM block "-----BEGIN … PRIVATE KEY-----" (OpenSSH, PKCS#1, PKCS#8, EC,
// DSA, encrypted, PGP), a PuTTY .ppk key, or OpenSSH's binary format.
func holdsPrivateKey(b []byte) bool {
	if bytes.Contains(b, puttyKey) || bytes.Contains(b, opensshBlob) {
		return true
	}
	for rest := b; ; {
		i := bytes.Index(rest, pemKeyEnd)
		if i < 0 {
			return false
		}
		lineStart := bytes.LastIndexByte(rest[:i], '\n') + 1
		line := rest[lineStart:i]
		if j := bytes.Index(line, pemBegin); j >= 0 && bytes.IndexFunc(line[j+len(pemBegin):], notLabel) < 0 {
			tail := rest[i+len(pemKeyEnd):]
			if bytes.HasPrefix(tail, []byte("-----")) || bytes.HasPrefix(tail, []byte(" BLOCK-----")) {
				return true
			}
		}
		rest = rest[i+len(pemKeyEnd):]
	}
}

// notLabel reports a rune that cannot be part of a PEM label's words.
func notLabel(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ')
}

// secretGuard refuses files that are never served: dsftp's own secrets
// (named in Options.SecretFiles) and anything holding a private key.
type secretGuard struct {
	files []string
	log   *refusalLog

	// The secret files' identities, looked up at most once a second
	// (a host key file may appear after the share starts): every open
	// compares with them, and a stat per file per open would be the
	// hot path's only disk metadata work.
	mu      sync.Mutex
	ids     []os.FileInfo
	checked time.Time
}

// scanBufs holds the buffers of the key scan: one per open otherwise.
var scanBufs = sync.Pool{New: func() any { b := make([]byte, keyScanBytes); return &b }}

// secretIDs returns the secret files' current identities.
func (g *secretGuard) secretIDs() []os.FileInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= time.Second {
		ids := make([]os.FileInfo, 0, len(g.files)) // callers may still hold the old slice
		for _, p := range g.files {
			if fi, err := os.Stat(p); err == nil {
				ids = append(ids, fi)
			}
		}
		g.ids = ids
		g.checked = time.Now()
	}
	return g.ids
}

// check is called with every file opened for a client, before a byte of
// it is sent. rel is for the log line.
func (g *secretGuard) check(f *os.File, fi os.FileInfo, rel string) error {
	for _, sfi := range g.secretIDs() {
		if os.SameFile(fi, sfi) {
			g.log.refused(rel, "dsftp secret")
			return errSecret
		}
	}
	n := min(fi.Size(), keyScanBytes)
	if n <= 0 {
		return nil
	}
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf := (*bp)[:n]
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if holdsPrivateKey(buf[:m]) {
		g.log.refused(rel, "private key")
		return errSecret
	}
	return nil
}

// refusalLog logs refused opens through the server's log limiter: the
// first lines of each reason in full, the rest summed up each minute.
type refusalLog struct {
	log *slog.Logger
	lim *logLimiter
}

func (l *refusalLog) refused(rel, why string) {
	if l.lim == nil || l.lim.allow(kindUnshared, source{}, why) {
		l.log.Warn("refused to serve a file", "path", clientPath(rel), "why", why)
	}
}
