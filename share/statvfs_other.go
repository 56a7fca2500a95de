//go:build !linux && !darwin && !freebsd

package share

import (
	"os"

	"github.com/pkg/sftp"
)

// statVFS is not offered here; clients (df through sshfs) take the
// "unsupported" answer as an unknown size.
func statVFS(f *os.File) (*sftp.StatVFS, error) {
	return nil, sftp.ErrSSHFxOpUnsupported
}
