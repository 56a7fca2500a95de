//go:build !windows

package fs

import (
	"path"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootIno is the inode number of the mount root (go-fuse's root node).
const rootIno = 1

// dotEntries are the "." and ".." a directory listing starts with, as
// `ls -a` expects and sshfs and rclone show them: go-fuse passes a
// Readdir through as it is and adds neither.
func dotEntries(self, parent uint64) [2]fuse.DirEntry {
	return [2]fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: self},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: parent},
	}
}

// dots are n's "." and "..": a peer's directory's parent is the root.
func (n *node) dots() [2]fuse.DirEntry {
	if n.rel == "" {
		return dotEntries(inoOf(n.peerID, ""), rootIno)
	}
	parent := path.Dir(n.rel)
	if parent == "." {
		parent = ""
	}
	return dotEntries(inoOf(n.peerID, n.rel), inoOf(n.peerID, parent))
}
