//go:build unix

package policy

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Open flags: never follow a final symlink (the view resolved them all),
// never block on a FIFO swapped in, and open directories as directories.
const (
	oNoFollow  = syscall.O_NOFOLLOW
	oNonblock  = syscall.O_NONBLOCK
	oDirectory = unix.O_DIRECTORY
)

// setBlocking makes reads of f block again after an O_NONBLOCK open.
func setBlocking(f *os.File) error { return unix.SetNonblock(int(f.Fd()), false) }
