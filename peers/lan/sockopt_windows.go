package lan

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// arrivalKnown: Windows does not report the arrival interface here, so
// --lan-interface only chooses where announcements go.
const arrivalKnown = false

// listenUDP opens a socket on the shared port: SO_REUSEADDR so several
// dsftp processes can listen, SO_BROADCAST to send to broadcast addresses.
func listenUDP(network string, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			h := syscall.Handle(fd)
			serr = syscall.SetsockoptInt(h, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			if serr == nil && network == "udp4" {
				serr = syscall.SetsockoptInt(h, syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	if network == "udp6" {
		addr = fmt.Sprintf("[::]:%d", port)
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
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
