//go:build unix && !linux && !darwin

package lan

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// ip4InfoOpt asks for the arrival interface of IPv4 datagrams: the BSDs
// have IP_RECVIF (a link-level address) rather than IP_PKTINFO.
const ip4InfoOpt = unix.IP_RECVIF

// ip4Ifindex reads sdl_index from the sockaddr_dl of an IP_RECVIF message
// (after sdl_len and sdl_family, one byte each).
func ip4Ifindex(m unix.SocketControlMessage) (int, bool) {
	if m.Header.Type != unix.IP_RECVIF || len(m.Data) < 4 {
		return 0, false
	}
	return int(binary.NativeEndian.Uint16(m.Data[2:4])), true
}
