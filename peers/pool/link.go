package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/route"
	"golang.org/x/crypto/ssh"
)

// link is what a conn needs of the SSH connection under it: a dialed
// *ssh.Client (clientLink), or SFTP channels straight on a reverse
// connection that a member keeps to our share (reverseLink).
type link interface {
	// openSFTP opens one SFTP session.
	openSFTP() (sftpPipe, error)
	SendRequest(name string, wantReply bool, payload []byte) (bool, []byte, error)
	OpenChannel(name string, data []byte) (ssh.Channel, <-chan *ssh.Request, error)
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Wait returns when the link is closed or broken.
	Wait() error
	Close() error
}

// sftpPipe is one SFTP session's streams.
type sftpPipe struct {
	w     io.WriteCloser
	r     io.Reader
	close func() error
}

type clientLink struct{ *ssh.Client }

// openSFTP opens a session channel and starts the sftp subsystem on it.
func (l clientLink) openSFTP() (sftpPipe, error) {
	sess, err := l.NewSession()
	if err != nil {
		return sftpPipe{}, fmt.Errorf("open session: %w", err)
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return sftpPipe{}, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return sftpPipe{}, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return sftpPipe{}, fmt.Errorf("start sftp subsystem: %w", err)
	}
	return sftpPipe{w: w, r: r, close: sess.Close}, nil
}

// reverseLink is one pool connection over a reverse connection that this
// share holds: its SFTP sessions are route.ChannelSFTP channels on the
// outer connection, encrypted once. The member's identity is the one the
// share checked when it accepted the offer (its login key is a client key
// of the member whose host key it offered); the member serves these
// channels only to us, the member it dialed and whose host key it checked.
type reverseLink struct {
	o  *route.Held
	id uint32 // the share groups the channels of one link by it

	mu     sync.Mutex
	chans  []ssh.Channel
	closed bool
	done   chan struct{}
}

func (l *reverseLink) openSFTP() (sftpPipe, error) {
	ch, err := l.o.OpenSFTP(l.id)
	if err != nil {
		return sftpPipe{}, fmt.Errorf("open sftp channel: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		ch.Close()
		return sftpPipe{}, errConnLost
	}
	l.chans = append(l.chans, ch)
	return sftpPipe{w: ch, r: ch, close: ch.Close}, nil
}

// SendRequest goes over the outer connection: keepalives check it.
func (l *reverseLink) SendRequest(name string, wantReply bool, payload []byte) (bool, []byte, error) {
	return l.o.SendRequest(name, wantReply, payload)
}

func (l *reverseLink) OpenChannel(string, []byte) (ssh.Channel, <-chan *ssh.Request, error) {
	return nil, nil, errors.New("a reverse connection carries only sftp sessions")
}

func (l *reverseLink) LocalAddr() net.Addr  { return l.o.LocalAddr() }
func (l *reverseLink) RemoteAddr() net.Addr { return l.o.RemoteAddr() }

func (l *reverseLink) Wait() error {
	select {
	case <-l.done:
	case <-l.o.Done():
	}
	return nil
}

// Close closes the link's channels; the outer connection stays for
// other links and relays.
func (l *reverseLink) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for _, ch := range l.chans {
		ch.Close()
	}
	return nil
}

// errOldReverse: the member holding the reverse connection does not
// serve SFTP channels (an older dsftp); the pool falls back to a complete
// SSH connection inside a channel.
var errOldReverse = errors.New("reverse connection without sftp channels")

// dialReverseSFTP starts a pool connection on SFTP channels over the
// peer's reverse connection, the newest first.
func (p *Pool) dialReverseSFTP(ctx context.Context, peer peers.Peer, g *group) (*conn, error) {
	offers := p.opts.Routes.Reverses(peer.ID)
	if len(offers) == 0 {
		return nil, fmt.Errorf("no reverse connection from %s is held here", peer.ID)
	}
	var errs []error
	for _, o := range offers {
		c, err := p.reverseConn(ctx, o, g)
		if err == nil {
			return c, nil
		}
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) && oe.Reason == ssh.UnknownChannelType {
			err = errOldReverse
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("open a reverse channel to %s: %w", peer.ID, errors.Join(errs...))
}

func (p *Pool) reverseConn(ctx context.Context, o *route.Held, g *group) (*conn, error) {
	l := &reverseLink{o: o, id: p.opts.Routes.NextLink(), done: make(chan struct{})}
	c := &conn{g: g, addr: route.Reverse, ssh: l, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	cl, err := startSFTP(l, c)
	if err != nil {
		stop()
		l.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sftp over the reverse connection: %w", ErrTimeout)
		}
		return nil, err
	}
	go func() { _, _ = c.dataChan() }()
	c.sftp = cl
	c.piece = bigPiece // a dsftp share
	now := time.Now()
	c.lastData.Store(now.UnixNano())
	c.noteHeard(now)
	if !stop() {
		cl.Close()
		l.Close()
		return nil, fmt.Errorf("sftp over the reverse connection: %w", ErrTimeout)
	}
	// The share closes the channels of an idle connection; the link
	// goes with them.
	go func() { _ = cl.Wait(); l.Close() }()
	return c, nil
}
