package share

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/pkg/sftp"
)

// errSecret is what a client sees for a file that is never served.
var errSecret = fmt.Errorf("file holds a private key or a dsftp secret and is never shared: %w", sftp.ErrSSHFxPermissionDenied)

// secretGuard refuses files that are never served: dsftp's own secrets
// (Options.SecretFiles) and copies of them, files in the secret
// directories (Options.SecretDirs) under any name, and anything holding
// a private key (see scanFile).
type secretGuard struct {
	ids secretIDs
	log *refusalLog
}

func newSecretGuard(files, dirs []string, log *refusalLog) *secretGuard {
	g := &secretGuard{ids: secretIDs{files: files, dirs: dirs, log: log.log}, log: log}
	g.ids.get() // the first look-up now, not on a client's first open
	return g
}

// check is called with every file opened for a client, before a byte of
// it is sent. rel is for the log line.
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

// refusalLog logs refused opens through the server's log limiter: the
// first lines of each reason in full, the rest summed up each minute.
type refusalLog struct {
	log *slog.Logger
	lim *logLimiter
}

func (l *refusalLog) refused(rel, why string) {
	if l.lim == nil || l.lim.allow(kindUnshared, netip.Prefix{}, why) {
		l.log.Warn("refused to serve a file", "path", clientPath(rel), "why", why)
	}
}
