package policy

import (
	"os"
	"syscall"
)

// keyOf is the verdictKey of fi, if the platform gives one.
func keyOf(fi os.FileInfo) (verdictKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return verdictKey{}, false
	}
	return verdictKey{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, true
}
