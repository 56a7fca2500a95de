//go:build linux || darwin

package lan

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// ip4InfoOpt asks for the arrival interface of IPv4 datagrams.
const ip4InfoOpt = unix.IP_PKTINFO

// ip4Ifindex reads the interface index from an IP_PKTINFO message.
func ip4Ifindex(m unix.SocketControlMessage) (int, bool) {
	if m.Header.Type != unix.IP_PKTINFO || len(m.Data) < unix.SizeofInet4Pktinfo {
		return 0, false
	}
	return int(int32(binary.NativeEndian.Uint32(m.Data[0:4]))), true
}
