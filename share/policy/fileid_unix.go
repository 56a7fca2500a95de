//go:build unix

package policy

import (
	"os"
	"syscall"
)

// fileKey is a bucket for an identity lookup: the inode number. Files
// with the same key are then compared with os.SameFile (device too).
func fileKey(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return uint64(fi.Size())
}
