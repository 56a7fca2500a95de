package sftpwire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// SFTP v3 packet types and constants used here.
const (
	fxpInit    = 1
	fxpVersion = 2
	fxpOpen    = 3
	fxpClose   = 4
	fxpRead    = 5
	fxpOpendir = 11
	fxpReaddir = 12
	fxpStatus  = 101
	fxpHandle  = 102
	fxpData    = 103
	fxpName    = 104

	fxfRead = 1

	fxOK       = 0
	fxEOF      = 1
	fxNoSuch   = 2
	fxPermDeny = 3

	attrSize        = 0x00000001
	attrUIDGID      = 0x00000002
	attrPermissions = 0x00000004
	attrACModTime   = 0x00000008
	attrExtended    = 0x80000000

	version = 3
)

// Limits on what a peer may declare. Every length read from the peer is
// checked against them before anything is allocated for it.
const (
	// MaxPacket bounds a reply's length field: a DATA reply to the largest
	// read a server answers (255 KiB for OpenSSH) fits, and OpenSSH's
	// sftp-server itself refuses packets above 256 KiB.
	MaxPacket = 1 << 20
	// maxHandle is the protocol's own bound ("MUST NOT be longer than 256
	// bytes"); every READ carries the handle back.
	maxHandle = 256
	// maxMessage bounds the part of a STATUS message kept: it ends up in
	// errors and logs.
	maxMessage = 256
)

// header is the start of every reply but VERSION: length (of type, id and
// body), type and request id.
type header struct {
	length uint32
	typ    byte
	id     uint32
}

// bodyLen is the length of the body after the header.
func (h header) bodyLen() int { return int(h.length) - 5 }

// readHeader reads one reply header and checks its length field.
func readHeader(r *bufio.Reader) (header, error) {
	var b [9]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return header{}, err
	}
	h := header{length: binary.BigEndian.Uint32(b[:4]), typ: b[4], id: binary.BigEndian.Uint32(b[5:9])}
	if h.length < 5 || h.length > MaxPacket {
		return header{}, fmt.Errorf("bad sftp packet length %d", h.length)
	}
	return h, nil
}

// appendHeader appends h as readHeader reads it.
func appendHeader(b []byte, h header) []byte {
	b = binary.BigEndian.AppendUint32(b, h.length)
	b = append(b, h.typ)
	return binary.BigEndian.AppendUint32(b, h.id)
}

// appendString appends an SFTP string: its length, then its bytes.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func sftpString(s string) []byte { return appendString(make([]byte, 0, 4+len(s)), s) }
