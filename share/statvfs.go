package share

import "github.com/pkg/sftp"

// fsStats are the numbers of a statfs(2) every platform has.
type fsStats struct {
	bsize, frsize                     uint64
	blocks, bfree, bavail, files, ffr uint64
	fsid                              [2]int32
	namemax                           uint64
}

// reply is the statvfs@openssh.com answer for s, marked read-only and
// nosuid whatever the disk is.
func (s fsStats) reply() *sftp.StatVFS {
	return &sftp.StatVFS{
		Bsize: s.bsize, Frsize: s.frsize,
		Blocks: s.blocks, Bfree: s.bfree, Bavail: s.bavail,
		Files: s.files, Ffree: s.ffr, Favail: s.ffr,
		Fsid:    uint64(uint32(s.fsid[0])) | uint64(uint32(s.fsid[1]))<<32,
		Flag:    fxeStatvfsRdonly | fxeStatvfsNosuid,
		Namemax: s.namemax,
	}
}
