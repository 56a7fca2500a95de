package policy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// oNoatime leaves access times alone where the kernel allows it (we own
// the file, or are privileged); oPath opens for fstatfs without reading.
const (
	oNoatime = syscall.O_NOATIME
	oPath    = unix.O_PATH
)
