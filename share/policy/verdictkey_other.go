//go:build !linux && !darwin && !freebsd

package policy

import "os"

// keyOf: without a portable inode and change time, no verdict is
// remembered and every listing scans (Windows, other systems).
func keyOf(fi os.FileInfo) (verdictKey, bool) { return verdictKey{}, false }
