//go:build unix && !linux

package policy

// Only Linux has O_NOATIME and O_PATH: elsewhere a read may update the
// access time (as any reader's would), and statvfs opens read-only.
const (
	oNoatime = 0
	oPath    = 0
)
