package lan

import (
	"net"
	"syscall"
)

// arrivalKnown: Windows does not report the arrival interface here, so
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

// ifindexFromOOB: no arrival interface on Windows.
func ifindexFromOOB(oob []byte) int { return -1 }

// joinGroup joins the IPv6 LAN group on one interface.
func joinGroup(c *net.UDPConn, ifindex int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	mreq := &syscall.IPv6Mreq{Interface: uint32(ifindex)}
	copy(mreq.Multiaddr[:], Group.To16())
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptIPv6Mreq(syscall.Handle(fd), syscall.IPPROTO_IPV6, syscall.IPV6_JOIN_GROUP, mreq)
	})
	if err != nil {
		return err
	}
	return serr
}
