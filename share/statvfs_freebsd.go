package share

import (
	"os"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// statVFS answers statvfs@openssh.com for the file system holding f,
// marked read-only whatever the disk is.
func statVFS(f *os.File) (*sftp.StatVFS, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return &sftp.StatVFS{
		Bsize:   uint64(st.Iosize),
		Frsize:  st.Bsize,
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  uint64(max(st.Bavail, 0)),
		Files:   st.Files,
		Ffree:   uint64(max(st.Ffree, 0)),
		Favail:  uint64(max(st.Ffree, 0)),
		Fsid:    uint64(uint32(st.Fsid.Val[0])) | uint64(uint32(st.Fsid.Val[1]))<<32,
		Flag:    fxeStatvfsRdonly | fxeStatvfsNosuid,
		Namemax: uint64(st.Namemax),
	}, nil
}
