// Package pool keeps SFTP sessions to peers: up to Options.Connections SSH
// connections per peer, dialled on the first request or ahead of it (Warm;
// all of a peer's addresses in parallel, happy-eyeballs style), pinged
// with keepalive@openssh.com when silent, torn down when the peer stops
// answering, and closed when idle.
//
// Every remote operation runs under a deadline: it fails with ETIMEDOUT
// when its connection has received no SFTP data for Options.Timeout (a
// frozen or vanished peer), and in any case after HardTimeout. The calls of
// pkg/sftp take no context, so each runs in its own goroutine and the
// caller returns at the deadline; the stuck connection is then closed,
// which also releases the goroutine.
//
// Reader (OpenReader) is the sequential read-ahead pipeline shared by the
// FUSE filesystem and `dsftp get`.
package pool

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Defaults for Options fields left zero.
const (
	DefaultConnections = 4
	DefaultTimeout     = 10 * time.Second
	DefaultIdleTimeout = 3 * time.Minute
	// DefaultReadAheadMemory lets four files be read sequentially at once
	// with their whole read-ahead window (maxWindow chunks).
	DefaultReadAheadMemory = 4 * maxWindow * ChunkSize
)

// Options configure a Pool.
type Options struct {
	// Connections is the most SSH connections kept per peer. Concurrent
	// requests and open files are spread across them. 0 means
	// DefaultConnections.
	Connections int
	// Timeout is how long an operation may wait without any SFTP data
	// arriving on its connection before it fails with ETIMEDOUT and the
	// connection is closed. It also bounds dialing and sets the silence
	// a peer is allowed (silence.go): a connection that received nothing
	// for Timeout/2 is pinged, and a peer silent for 4/5 of it is given up
	// and probed. 0 means DefaultTimeout.
	Timeout time.Duration
	// HardTimeout bounds an operation even while its connection keeps
	// receiving data for other requests. Zero means 4 × Timeout.
	HardTimeout time.Duration
	// IdleTimeout closes connections that carried no request for this
	// long; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// RunKey is the per-run client key that discovery advertises; New
	// generates an ed25519 key when nil.
	RunKey ssh.Signer
	// Identities are extra client keys (--identity FILE).
	Identities []ssh.Signer
	// AgentSocket is the ssh-agent socket to take keys from ("" for none);
	// usually $SSH_AUTH_SOCK.
	AgentSocket string
	// KnownHostsFile decides host keys of peers without a pinned key or
	// fingerprint; "" means ~/.ssh/known_hosts.
	KnownHostsFile string
	// User is the login name for peers whose URL names none; "" means the
	// current user.
	User string
	// Routes holds the reverse connections of members that cannot be
	// dialed; with it the pool also tries reverse and relay routes
	// (route.go). Nil: direct addresses only.
	Routes *route.Table
	// Punch opens streams over QUIC paths punched through NAT to a peer's
	// UDP candidates (route.Punched); nil: no punched routes.
	Punch Puncher
	// TURN opens streams over QUIC paths through a TURN relay, ours or the
	// peer's (route.TURN), for a peer that TURNable says it can reach so;
	// nil: no TURN routes.
	TURN TURNer
	// NoRelay keeps the pool from asking other members to relay.
	NoRelay bool
	// SelfID is this process's own peer ID, never used as a relay; an
	// address answering with it is this process's own share.
	SelfID string
	// ClientVersion is the SSH version line the pool sends; empty means
	// "SSH-2.0-dsftp". The share of this process recognises its own dials
	// by it (share.Options.SelfClientVersion).
	ClientVersion string
	// DirectRetry is how often a peer reached through another member is
	// dialed directly again; zero means DefaultDirectRetry.
	DirectRetry time.Duration
	// ReadAheadMemory bounds the read-ahead of all open files together:
	// once that much is fetched ahead, further reads fetch only the chunk
	// they need, so many files read at once cannot grow memory without
	// bound. Zero means DefaultReadAheadMemory.
	ReadAheadMemory int64
	// Suspects hears of discovered peers that no route reaches (down.go).
	Suspects Suspects
	// WarmPeers is the most peers Warm connects to ahead of their first
	// request, counting every peer with a connection. Zero means
	// DefaultWarmPeers; negative turns Warm off.
	WarmPeers int
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// setDefaults fills the fields left zero (negative durations and counts
// too) with their defaults; it fails only when no run key can be made.
func (o *Options) setDefaults() error {
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HardTimeout <= 0 {
		o.HardTimeout = 4 * o.Timeout
	}
	if o.DirectRetry <= 0 {
		o.DirectRetry = DefaultDirectRetry
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ReadAheadMemory <= 0 {
		o.ReadAheadMemory = DefaultReadAheadMemory
	}
	if o.WarmPeers == 0 {
		o.WarmPeers = DefaultWarmPeers
	}
	if o.ClientVersion == "" {
		o.ClientVersion = "SSH-2.0-dsftp"
	}
	if o.User == "" {
		if u, err := user.Current(); err == nil {
			o.User = u.Username
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RunKey == nil {
		k, err := NewRunKey()
		if err != nil {
			return err
		}
		o.RunKey = k
	}
	return nil
}

// Pool holds the connections to all peers. Its methods are safe for
// concurrent use.
type Pool struct {
	opts   Options
	log    *slog.Logger
	mu     sync.Mutex
	groups map[string]*group // by peer ID
	closed bool
	stop   chan struct{} // closed by Close
	warm   warmer

	bytesRead atomic.Int64 // file data received (BytesRead)
	ahead     atomic.Int64 // bytes of read-ahead chunks queued by all readers
}

// NewRunKey generates a fresh ed25519 client key for one run of dsftp.
func NewRunKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate run key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// LoadIdentity reads an unencrypted OpenSSH/PEM private key file.
func LoadIdentity(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	if errors.As(err, &pp) {
		return nil, fmt.Errorf("identity %s is passphrase-protected; add it to ssh-agent (ssh-add %s) and set SSH_AUTH_SOCK instead", file, file)
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", file, err)
	}
	return s, nil
}

// New returns a pool; it dials nothing until the first request or Warm.
func New(opts Options) (*Pool, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	return &Pool{opts: opts, log: opts.Logger, groups: map[string]*group{}, stop: make(chan struct{}),
		warm: warmer{wake: make(chan struct{}, 1), done: make(chan struct{})}}, nil
}

// PublicKey is the per-run client key, for discovery to advertise and for
// peers' shares to accept.
func (p *Pool) PublicKey() ssh.PublicKey { return p.opts.RunKey.PublicKey() }

// RunKey is the per-run client key itself.
func (p *Pool) RunKey() ssh.Signer { return p.opts.RunKey }

// Timeout is the per-operation deadline in use.
func (p *Pool) Timeout() time.Duration { return p.opts.Timeout }

// Close closes every connection; later calls fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	if !p.closed {
		close(p.warm.done)
		close(p.stop)
	}
	p.closed = true
	groups := p.groups
	p.groups = map[string]*group{}
	p.mu.Unlock()
	for _, g := range groups {
		g.closeAll(errPoolClosed)
	}
	return nil
}

// Forget closes the connections to the peer with this ID, e.g. after it
// left the registry.
func (p *Pool) Forget(id string) {
	p.mu.Lock()
	g := p.groups[id]
	delete(p.groups, id)
	p.mu.Unlock()
	if g != nil {
		g.closeAll(errors.New("peer left"))
	}
}

var errPoolClosed = errors.New("connection pool closed")

func (p *Pool) group(peer peers.Peer) (*group, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	g := p.groups[peer.ID]
	if g == nil {
		g = newGroup(p, peer)
		p.groups[peer.ID] = g
	}
	return g, nil
}

// RemotePath maps a path relative to the peer's root (slash-separated, ""
// for the root) to the path sent to the server.
func RemotePath(peer peers.Peer, rel string) string {
	rel = path.Clean("/" + rel)[1:]
	if peer.Path == "" {
		if rel == "" {
			return "."
		}
		return rel
	}
	return path.Join(peer.Path, rel)
}

// do runs fn on a connection to peer under the pool's deadlines and
// returns its value. fn runs in its own goroutine and may outlive do (when
// the deadline or ctx cuts it short), so its result travels through a
// channel and is read only once fn has finished.
func do[T any](ctx context.Context, p *Pool, peer peers.Peer, op, rel string, fn func(c *conn) (T, error)) (T, error) {
	var zero T
	g, err := p.group(peer)
	if err != nil {
		return zero, opError(op, peer, rel, err)
	}
	for attempt := 0; ; attempt++ {
		c, err := g.acquire(ctx, peer)
		if err != nil {
			return zero, opError(op, peer, rel, err)
		}
		res := make(chan T, 1)
		err = c.call(ctx, func() error {
			v, err := fn(c)
			res <- v
			return err
		})
		g.release(c, err)
		if err == nil {
			return <-res, nil
		}
		// Every operation here only reads: one that met a connection
		// the peer had just closed or reset (its idle timeout, or it
		// died) is asked again on a fresh one, which also tells why.
		if attempt > 0 || !transportLost(err) {
			return zero, opError(op, peer, rel, err)
		}
	}
}

// Lstat returns the attributes of rel without following a final symlink.
func (p *Pool) Lstat(ctx context.Context, peer peers.Peer, rel string) (os.FileInfo, error) {
	return do(ctx, p, peer, "lstat", rel, func(c *conn) (os.FileInfo, error) {
		return c.sftp.Lstat(RemotePath(peer, rel))
	})
}

// Stat returns the attributes of rel, following symlinks.
func (p *Pool) Stat(ctx context.Context, peer peers.Peer, rel string) (os.FileInfo, error) {
	return do(ctx, p, peer, "stat", rel, func(c *conn) (os.FileInfo, error) {
		return c.sftp.Stat(RemotePath(peer, rel))
	})
}

// ReadDir lists the directory rel with the attributes of every entry, in
// the server's order.
func (p *Pool) ReadDir(ctx context.Context, peer peers.Peer, rel string) ([]os.FileInfo, error) {
	return do(ctx, p, peer, "readdir", rel, func(c *conn) ([]os.FileInfo, error) {
		return c.sftp.ReadDir(RemotePath(peer, rel))
	})
}

// ReadLink returns the target of the symlink rel, unchanged.
func (p *Pool) ReadLink(ctx context.Context, peer peers.Peer, rel string) (string, error) {
	return do(ctx, p, peer, "readlink", rel, func(c *conn) (string, error) {
		return c.sftp.ReadLink(RemotePath(peer, rel))
	})
}

// StatVFS returns file system statistics where the server supports the
// statvfs@openssh.com extension; otherwise an error wrapping ENOTSUP.
func (p *Pool) StatVFS(ctx context.Context, peer peers.Peer, rel string) (*sftp.StatVFS, error) {
	return do(ctx, p, peer, "statvfs", rel, func(c *conn) (*sftp.StatVFS, error) {
		if _, ok := c.sftp.HasExtension("statvfs@openssh.com"); !ok {
			return nil, errNotSupported
		}
		return c.sftp.StatVFS(RemotePath(peer, rel))
	})
}
