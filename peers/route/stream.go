package route

import (
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Stream is an SSH channel as a net.Conn, so that a whole SSH connection
// can run inside a channel of another one (relays: bytes piped through a
// member that only sees ciphertext). A deadline that passes closes the
// channel (SSH channels have no deadlines of their own); that is what the
// users of a stream's deadlines (login grace, dial timeouts) want.
type Stream struct {
	ssh.Channel
	local, remote net.Addr

	mu    sync.Mutex
	timer *time.Timer
}

// NewStream wraps ch; local and remote are the addresses of the connection that
// carries it, for logs and per-source limits.
func NewStream(ch ssh.Channel, local, remote net.Addr) *Stream {
	return &Stream{Channel: ch, local: local, remote: remote}
}

func (c *Stream) LocalAddr() net.Addr  { return c.local }
func (c *Stream) RemoteAddr() net.Addr { return c.remote }

// SetDeadline closes the channel at t; the zero time cancels that.
func (c *Stream) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() { _ = c.Channel.Close() })
	}
	return nil
}

func (c *Stream) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *Stream) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

// Close closes the channel and stops a pending deadline.
func (c *Stream) Close() error {
	_ = c.SetDeadline(time.Time{})
	return c.Channel.Close()
}
