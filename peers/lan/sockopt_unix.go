//go:build unix

package lan

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// arrivalKnown: the socket reports each datagram's arrival interface.
const arrivalKnown = true

// setSockopts prepares a socket on the shared port: SO_REUSEPORT so that
// several dsftp processes on one host can all listen, SO_BROADCAST to send
// to broadcast addresses, and packet info to learn the arrival interface.
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
		set(unix.IPPROTO_IP, ip4InfoOpt)
	} else {
		set(unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO)
		// Other processes on this host joined the group too.
		set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP)
	}
	return serr
}

// ifindexFromOOB returns the arrival interface from IP_PKTINFO or
// IPV6_PKTINFO control data, or -1.
func ifindexFromOOB(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP:
			if idx, ok := ip4Ifindex(m); ok {
				return idx
			}
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			return int(binary.NativeEndian.Uint32(m.Data[16:20]))
		}
	}
	return -1
}

// joinGroup joins the IPv6 LAN group on one interface.
func joinGroup(c *net.UDPConn, ifindex int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	mreq := &unix.IPv6Mreq{Interface: uint32(ifindex)}
	copy(mreq.Multiaddr[:], Group.To16())
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)
	})
	if err != nil {
		return err
	}
	if serr == unix.EADDRINUSE {
		return nil // already a member
	}
	return serr
}
