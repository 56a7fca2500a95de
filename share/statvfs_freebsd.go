package share

import (
	"os"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// statVFS answers statvfs@openssh.com for the file system holding f.
func statVFS(f *os.File) (*sftp.StatVFS, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return fsStats{uint64(st.Iosize), st.Bsize, st.Blocks, st.Bfree, uint64(max(st.Bavail, 0)),
		st.Files, uint64(max(st.Ffree, 0)), st.Fsid.Val, uint64(st.Namemax)}.reply(), nil
}
