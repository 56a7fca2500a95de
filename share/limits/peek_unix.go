//go:build unix

package limits

import (
	"bytes"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// versionQueued reports whether a line (the SSH version line) has arrived
// on c but has not been read yet: a client that sent it is not silent,
// however late its handler reads it.
func versionQueued(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	found := false
	_ = rc.Control(func(fd uintptr) {
		var buf [256]byte
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		found = err == nil && n > 0 && bytes.IndexByte(buf[:n], '\n') >= 0
	})
	return found
}
