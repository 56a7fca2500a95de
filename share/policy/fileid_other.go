//go:build !unix

package policy

import "os"

// fileKey is a bucket for an identity lookup. Windows has its file index
// only behind another system call, so the bucket is the size, which hard
// links share; os.SameFile then decides.
func fileKey(fi os.FileInfo) uint64 { return uint64(fi.Size()) }
