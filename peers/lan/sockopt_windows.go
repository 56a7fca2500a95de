package lan

import "syscall"

// arrivalKnown: Windows does not report the arrival interface here
// (x/net's control messages are not implemented there), so
// --lan-interface only chooses where announcements go.
const arrivalKnown = false

// setSockopts prepares a socket on the shared port: SO_REUSEADDR so
// several dsftp processes can listen, SO_BROADCAST to send to broadcast
// addresses.
func setSockopts(network string, fd uintptr) error {
	h := syscall.Handle(fd)
	err := syscall.SetsockoptInt(h, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err == nil && network == "udp4" {
		err = syscall.SetsockoptInt(h, syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}
	return err
}
