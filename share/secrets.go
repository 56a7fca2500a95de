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
}

// check is called with every file opened for a client, before a byte of
// it is sent. rel is for the log line.
func (g *secretGuard) check(f *os.File, fi os.FileInfo, rel string) error {
	for _, p := range g.files {
		if sfi, err := os.Stat(p); err == nil && os.SameFile(fi, sfi) {
			g.log.refused(rel, "dsftp secret")
			return errSecret
		}
	}
	n := min(fi.Size(), keyScanBytes)
	if n <= 0 {
		return nil
	}
	buf := make([]byte, n)
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

// refusalLog logs refused opens, at most refusalLogBurst lines a minute;
// the rest are counted and summed up in one line when the minute is over.
type refusalLog struct {
	log *slog.Logger

	mu         sync.Mutex
	windowEnd  time.Time
	logged     int
	suppressed int
}

const refusalLogBurst = 10

func (l *refusalLog) refused(rel, why string) {
	l.mu.Lock()
	now := time.Now()
	if now.After(l.windowEnd) {
		if l.suppressed > 0 {
			l.log.Warn("refused more opens of unshared files", "count", l.suppressed, "period", "1m")
		}
		l.windowEnd, l.logged, l.suppressed = now.Add(time.Minute), 0, 0
	}
	ok := l.logged < refusalLogBurst
	if ok {
		l.logged++
	} else {
		l.suppressed++
	}
	l.mu.Unlock()
	if ok {
		l.log.Warn("refused to serve a file", "path", clientPath(rel), "why", why)
	}
}
