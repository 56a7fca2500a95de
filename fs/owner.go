//go:build !windows

package fs

import (
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// owner is who owns every file of the mount and which permission bits
// are masked off, as --uid, --gid and --umask (or -o uid=,gid=,umask=) say.
type owner struct {
	uid, gid uint32
	umask    uint32
}

func newOwner(o Options) owner {
	own := owner{uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), umask: o.Umask & 0o777}
	if o.UID != nil {
		own.uid = *o.UID
	}
	if o.GID != nil {
		own.gid = *o.GID
	}
	return own
}

// mode is the peer's mode as the mount shows it: setuid, setgid and
// sticky are cleared (the mount is nosuid; a peer must not plant a setuid
// binary), the umask is applied, and the write bits stay, so a copy of a
// 0644 file is 0644 and `cp -a` gives a tree its user can change. The
// mount itself is read-only: the kernel refuses writes with EROFS.
func (o owner) mode(m uint32) uint32 {
	return m &^ (0o7000 | o.umask)
}

// dirAttr fills out for a directory that is dsftp's own (the mount root,
// a peer's directory): 0755 under the umask, owned like every file.
func (o owner) dirAttr(out *fuse.Attr) {
	out.Mode = syscall.S_IFDIR | o.mode(0o755)
	out.Nlink = 2
	out.Uid, out.Gid = o.uid, o.gid
}
