//go:build unix

package share

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit raises the soft limit on open descriptors to the hard
// limit: every connection costs one, and the default soft limit (1024 on
// most systems) is reached long before memory runs short. (Go's runtime
// does the same at start since 1.19; this also covers embedders that
// lowered it, and says in the log what the limit is.)
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Debug("read descriptor limit", "err", err)
		return
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Debug("raise descriptor limit", "from", old, "to", lim.Max, "err", err)
			return
		}
	}
	log.Debug("descriptor limit", "soft", lim.Cur, "hard", lim.Max)
}
