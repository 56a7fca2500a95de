//go:build unix

package lan

import "golang.org/x/sys/unix"

// arrivalKnown: the socket reports each datagram's arrival interface.
const arrivalKnown = true

// setSockopts prepares a socket on the shared port: SO_REUSEPORT so that
// several dsftp processes on one host can all listen, and SO_BROADCAST to
// send to broadcast addresses. x/net has no setter for these.
func setSockopts(network string, fd uintptr) error {
	var serr error
	set := func(level, opt int) {
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), level, opt, 1)
		}
	}
	set(unix.SOL_SOCKET, unix.SO_REUSEADDR)
	set(unix.SOL_SOCKET, unix.SO_REUSEPORT)
	// Room for a burst (capped by net.core.rmem_max); a flood then costs
	// dropped datagrams, and a peer's next announcement gets through.
	_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if network == "udp4" {
		set(unix.SOL_SOCKET, unix.SO_BROADCAST)
	}
	return serr
}
