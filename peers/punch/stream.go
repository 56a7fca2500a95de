package punch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// streamConn is one QUIC stream as a net.Conn, with the addresses of the
// connection it belongs to (the share's per-source limits key on them).
// On an incoming connection it counts in the connection's slot while open
// (idle.go).
type streamConn struct {
	*quic.Stream
	conn   *quic.Conn
	slot   *slot
	closed sync.Once
}

func newStreamConn(s *quic.Stream, c *quic.Conn) *streamConn {
	sc := &streamConn{Stream: s, conn: c, slot: slotOf(c)}
	if sc.slot != nil {
		sc.slot.streamOpened()
	}
	return sc
}

// slotOf is the limiter's slot of an incoming connection, nil for one
// this side dialed.
func slotOf(c *quic.Conn) *slot {
	s, _ := c.Context().Value(slotKey{}).(*slot)
	return s
}

func (s *streamConn) LocalAddr() net.Addr  { return s.conn.LocalAddr() }
func (s *streamConn) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// Close ends both directions: a net.Conn's user is done with it, while
// quic's Close only ends the sending side.
func (s *streamConn) Close() error {
	if s.slot != nil {
		s.closed.Do(s.slot.streamClosed)
	}
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

// Path is a QUIC connection to a peer, dialed or accepted. Either side can
// open streams on it; the peer's streams arrive at the endpoint's Accept.
type Path struct {
	conn *quic.Conn
	// Dialed tells whether this side dialed the connection.
	Dialed bool
}

// OpenStream opens a stream to the peer's share, as a net.Conn for one
// SSH client connection.
func (p *Path) OpenStream(ctx context.Context) (net.Conn, error) {
	s, err := p.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open QUIC stream to %s: %w", p.conn.RemoteAddr(), err)
	}
	return newStreamConn(s, p.conn), nil
}

// RemoteAddr is the peer's address as this side sees it.
func (p *Path) RemoteAddr() netip.AddrPort { return addrPort(p.conn.RemoteAddr()) }

// RTT is the smoothed round-trip time measured on the path.
func (p *Path) RTT() time.Duration { return p.conn.ConnectionStats().SmoothedRTT }

// Done is closed when the path is gone (closed, timed out, peer gone).
func (p *Path) Done() <-chan struct{} { return p.conn.Context().Done() }

// Close closes the connection and its streams.
func (p *Path) Close() error { return p.conn.CloseWithError(0, "") }
