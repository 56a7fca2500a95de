//go:build linux

package share

import (
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// pipeListener is a net.Listener whose connections are in-memory pipes,
// so that a Server can run inside a testing/synctest bubble (a real
// socket blocks outside it, and the bubble's clock would never move).
// Its connections come from 127.0.0.1, as the share's limits expect of a
// TCP peer.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// pipeAddr is the address both ends of every pipe claim.
var pipeAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2200}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr }

// dial hands the server one end of a new pipe and returns the other.
func (l *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- newBufferedConn(server):
		return newBufferedConn(client), nil
	case <-l.closed:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	}
}

// bufferedConn queues its writes, as a socket's send buffer would: SSH
// has both ends write their version line (and later KEXINIT) before
// reading, which deadlocks on a bare net.Pipe.
type bufferedConn struct {
	net.Conn
	out       chan []byte
	done      chan struct{}
	closeOnce sync.Once
}

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, out: make(chan []byte, 1024), done: make(chan struct{})}
	go b.pump()
	return b
}

// pump writes the queued data to the pipe until the connection closes.
func (b *bufferedConn) pump() {
	for {
		select {
		case p := <-b.out:
			if _, err := b.Conn.Write(p); err != nil {
				b.Close()
				return
			}
		case <-b.done:
			return
		}
	}
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	select {
	case b.out <- append([]byte(nil), p...):
		return len(p), nil
	case <-b.done:
		return 0, net.ErrClosed
	}
}

func (b *bufferedConn) Close() error {
	b.closeOnce.Do(func() { close(b.done) })
	return b.Conn.Close()
}

func (b *bufferedConn) LocalAddr() net.Addr  { return pipeAddr }
func (b *bufferedConn) RemoteAddr() net.Addr { return pipeAddr }

// startPipeShare is startTestShare on a pipeListener: call it inside a
// synctest bubble, and dial with ts.dial.
func startPipeShare(t testing.TB, dir string, mod func(*Options)) *testShare {
	t.Helper()
	ln := newPipeListener()
	ts := startTestShareOn(t, ln, dir, mod, nil)
	ts.pipe = ln
	return ts
}

// dialPipe logs in over a new pipe of ts's pipeListener.
func (ts *testShare) dialPipe(auth []ssh.AuthMethod) (*ssh.Client, error) {
	c, err := ts.pipe.dial()
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            "someone",
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         10 * time.Second,
	}
	sc, chans, reqs, err := ssh.NewClientConn(c, pipeAddr.String(), cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}
