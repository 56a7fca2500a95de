package share

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync/atomic"
)

// packetConn hands the SSH transport's output to the kernel one whole SSH
// packet per write. x/crypto/ssh writes each packet through a 4 KiB
// bufio.Writer: a 32 KiB data packet leaves as a 4 KiB write and then a
// 28 KiB one, two syscalls and two TCP segments, which the client has to
// wake up for twice. packetConn keeps the head of a packet until the rest
// arrives (the transport always writes whole packets before it waits for
// anything) and sends both with one writev.
//
// It finds packet boundaries from the SSH framing: the version line, then
// unencrypted packets (4-byte length, then that many bytes) up to and
// including the first NEWKEYS, then AES-GCM packets (4-byte plaintext
// length, that many encrypted bytes, a 16-byte tag; rekeying keeps this
// framing). The server offers only AES-GCM ciphers, so no other framing
// can follow; tests check it across rekeys. A length no packet can have
// (the sign of a misparse) turns it into a plain pass-through for good.
type packetConn struct {
	net.Conn

	state   atomic.Int32 // stateVersion, statePlain, stateGCM or statePass (atomic for tests)
	pending []byte       // the written head of an incomplete packet (copied)
	need    int          // bytes still missing from the current packet; 0 at a boundary
	plain   bool         // the current packet is unencrypted: check it for NEWKEYS
	bufs    net.Buffers

	// testHookWrite, if set, receives what would go to the socket in one
	// write(v) call, instead of the socket. Tests only.
	testHookWrite func(bufs [][]byte)
}

const (
	stateVersion = iota
	statePlain
	stateGCM
	statePass

	gcmTagLen = 16
	// maxSSHPacket is far above any packet the server sends (channel data
	// is capped by the client's maximum packet size, 32 KiB for OpenSSH
	// and x/crypto) yet rejects almost every misparsed length.
	maxSSHPacket   = 16 << 20
	msgNewKeysType = 21
)

func newPacketConn(c net.Conn) *packetConn { return &packetConn{Conn: c} }

// Write is called by the transport's bufio.Writer only, one call at a time.
func (c *packetConn) Write(p []byte) (int, error) {
	state := c.state.Load()
	if state == stateVersion {
		// The version line goes out in one write, before any packet.
		if i := bytes.IndexByte(p, '\n'); i == len(p)-1 {
			c.state.Store(statePlain)
		} else {
			c.state.Store(statePass)
		}
		return c.flush(p)
	}
	if state == statePass {
		return c.flush(p)
	}
	total := len(p)
	rest := p
	for len(rest) > 0 {
		if c.need == 0 {
			// At a packet boundary: the length (and for an unencrypted
			// packet its type, after the padding length) must be known.
			var head [6]byte
			n := copy(head[:], c.pending)
			n += copy(head[n:], rest)
			if n < len(head) {
				c.pending = append(c.pending, rest...)
				return total, nil
			}
			l := int(binary.BigEndian.Uint32(head[:4]))
			if l < 1 || l > maxSSHPacket {
				c.state.Store(statePass)
				_, err := c.flush(rest)
				return total, err
			}
			size := 4 + l
			c.plain = c.state.Load() == statePlain
			if !c.plain {
				size += gcmTagLen
			}
			c.need = size - len(c.pending)
			if c.plain && head[5] == msgNewKeysType {
				// Packets after our NEWKEYS are encrypted.
				c.state.Store(stateGCM)
			}
		}
		k := min(c.need, len(rest))
		c.need -= k
		if c.need > 0 {
			// Keep the head until the rest of the packet is written.
			c.pending = append(c.pending, rest[:k]...)
			return total, nil
		}
		if _, err := c.flush(rest[:k]); err != nil {
			return 0, err
		}
		rest = rest[k:]
	}
	return total, nil
}

// flush writes the pending head and p with one writev.
func (c *packetConn) flush(p []byte) (int, error) {
	if c.testHookWrite != nil {
		c.testHookWrite([][]byte{append([]byte(nil), c.pending...), append([]byte(nil), p...)})
		c.pending = c.pending[:0]
		return len(p), nil
	}
	if len(c.pending) == 0 {
		return c.Conn.Write(p)
	}
	c.bufs = append(c.bufs[:0], c.pending, p)
	n := len(c.pending) + len(p)
	bufs := c.bufs
	_, err := bufs.WriteTo(c.Conn)
	c.pending = c.pending[:0]
	c.bufs[0], c.bufs[1] = nil, nil
	if err != nil {
		return 0, err
	}
	return n, nil
}
