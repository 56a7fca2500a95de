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
	return fsStats{uint64(st.Bsize), uint64(st.Frsize), st.Blocks, st.Bfree, st.Bavail,
		st.Files, st.Ffree, st.Fsid.Val, uint64(st.Namelen)}.reply(), nil
}
