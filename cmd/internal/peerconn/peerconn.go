// Package peerconn gives the shell and `dsftp get` SFTP sessions to the
// peers in a registry: one cached session per peer, dialed on first use
// with the peer's pinned host key, dropped when it breaks so the next
// command dials again.
//
// It is the small stand-in for the peer session pool; Remote is the seam
// where the pool plugs in.
package peerconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/dsftp/dsftp/cmd/internal/shell"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/download"
)

// Options configure a Remote.
type Options struct {
	// Registry holds the live peers.
	Registry *peers.Registry
	// Signers are the client keys to log in with.
	Signers []ssh.Signer
	// Timeout bounds dialing and every metadata request; 0 means 15 s.
	Timeout time.Duration
	// SettleUntil is when discovery is expected to have found the peers
	// that are online; before it, Settling reports true.
	SettleUntil time.Time
}

// Remote implements shell.Remote over a registry.
type Remote struct {
	opts  Options
	mu    sync.Mutex
	conns map[string]*conn // by peer ID
}

var _ shell.Remote = (*Remote)(nil)

// New returns a Remote; Close releases its sessions.
func New(opts Options) *Remote {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	return &Remote{opts: opts, conns: map[string]*conn{}}
}

type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
}

func (c *conn) close() {
	c.sftp.Close()
	c.ssh.Close()
}

// Peers implements shell.Remote.
func (r *Remote) Peers() []shell.PeerInfo {
	var out []shell.PeerInfo
	for _, e := range r.opts.Registry.List() {
		pi := shell.PeerInfo{Name: e.DisplayName, Source: e.Source, Fingerprint: e.HostKeyFingerprint}
		if len(e.Addrs) > 0 {
			pi.Addr = e.Addrs[0]
		}
		if e.HostKey != nil {
			pi.Fingerprint = ssh.FingerprintSHA256(e.HostKey)
		}
		out = append(out, pi)
	}
	return out
}

// Settling implements shell.Remote.
func (r *Remote) Settling() bool { return time.Now().Before(r.opts.SettleUntil) }

// Origin implements shell.Remote: the peer's ID.
func (r *Remote) Origin(name string) string {
	e, _ := r.opts.Registry.Get(name)
	return e.ID
}

// Connect implements shell.Remote.
func (r *Remote) Connect(ctx context.Context, name string) (download.Source, error) {
	e, ok := r.opts.Registry.Get(name)
	if !ok {
		return nil, fmt.Errorf("peer %s is gone (it stopped advertising)", name)
	}
	if _, err := r.session(ctx, e); err != nil {
		return nil, err
	}
	return &source{r: r, name: name}, nil
}

// Disconnect implements shell.Remote.
func (r *Remote) Disconnect(name string) {
	e, ok := r.opts.Registry.Get(name)
	if !ok {
		return
	}
	r.drop(e.ID, nil)
}

// Close closes every session.
func (r *Remote) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.conns {
		c.close()
		delete(r.conns, id)
	}
}

// drop forgets the session of peer id (only if it is still c, when c is
// not nil) and closes it.
func (r *Remote) drop(id string, c *conn) {
	r.mu.Lock()
	cur, ok := r.conns[id]
	if ok && (c == nil || cur == c) {
		delete(r.conns, id)
	}
	r.mu.Unlock()
	if ok && (c == nil || cur == c) {
		cur.close()
	}
}

// session returns the cached session to e, dialing one if needed.
func (r *Remote) session(ctx context.Context, e peers.Entry) (*conn, error) {
	r.mu.Lock()
	c, ok := r.conns[e.ID]
	r.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := r.dial(ctx, e)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.conns[e.ID]; ok {
		c.close()
		return old, nil
	}
	r.conns[e.ID] = c
	return c, nil
}

// ErrHostKey: the peer's host key is not the one it advertised.
var ErrHostKey = errors.New("host key mismatch")

func (r *Remote) dial(ctx context.Context, e peers.Entry) (*conn, error) {
	if len(e.Addrs) == 0 {
		return nil, fmt.Errorf("peer %s has no address", e.DisplayName)
	}
	hk, err := hostKeyCallback(e.Peer)
	if err != nil {
		return nil, err
	}
	user := e.User
	if user == "" {
		user = "dsftp"
	}
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(r.opts.Signers...)},
		HostKeyCallback: hk,
		Timeout:         r.opts.Timeout,
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var errs []error
	for _, addr := range e.Addrs {
		c, err := dialOne(ctx, addr, cfg)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrHostKey) {
			return nil, fmt.Errorf("peer %s at %s: %w: refusing to connect (it is not the machine that advertised this name)", e.DisplayName, addr, ErrHostKey)
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, fmt.Errorf("connect to peer %s: %w", e.DisplayName, errors.Join(errs...))
}

func dialOne(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake obeys the context too: close the socket if it ends.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer within %v: %w", cfg.Timeout, download.ErrTimeout)
		}
		return nil, err
	}
	client := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(client,
		sftp.UseConcurrentReads(true),
		sftp.MaxConcurrentRequestsPerFile(64),
	)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start sftp: %w", err)
	}
	return &conn{ssh: client, sftp: sc2}, nil
}

// hostKeyCallback accepts exactly the peer's pinned key, or a key with its
// pinned fingerprint; without a pin, ~/.ssh/known_hosts decides.
func hostKeyCallback(p peers.Peer) (ssh.HostKeyCallback, error) {
	switch {
	case p.HostKey != nil:
		want := p.HostKey.Marshal()
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if string(key.Marshal()) != string(want) {
				return fmt.Errorf("%w: got %s", ErrHostKey, ssh.FingerprintSHA256(key))
			}
			return nil
		}, nil
	case p.HostKeyFingerprint != "":
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if got := ssh.FingerprintSHA256(key); got != p.HostKeyFingerprint {
				return fmt.Errorf("%w: got %s, want %s", ErrHostKey, got, p.HostKeyFingerprint)
			}
			return nil
		}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("peer %s has no pinned host key and there is no home for known_hosts: %w", p.Name, err)
	}
	cb, err := knownhosts.New(filepath.Join(home, ".ssh", "known_hosts"))
	if err != nil {
		return nil, fmt.Errorf("peer %s has no pinned host key; known_hosts: %w", p.Name, err)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		if err := cb(host, remote, key); err != nil {
			return fmt.Errorf("%w: %v", ErrHostKey, err)
		}
		return nil
	}, nil
}

// source is a download.Source for a named peer over the cached session.
// A request that fails because the session broke drops it, so the next one
// dials again (the peer may have restarted).
type source struct {
	r    *Remote
	name string
}

func (s *source) get(ctx context.Context) (*download.SFTPSource, string, *conn, error) {
	e, ok := s.r.opts.Registry.Get(s.name)
	if !ok {
		return nil, "", nil, fmt.Errorf("peer %s is gone (it stopped advertising)", s.name)
	}
	c, err := s.r.session(ctx, e)
	if err != nil {
		return nil, "", nil, err
	}
	return &download.SFTPSource{Client: c.sftp, Root: e.Path, Timeout: s.r.opts.Timeout}, e.ID, c, nil
}

// broken reports errors after which the session is not worth keeping.
func broken(err error) bool {
	if err == nil {
		return false
	}
	var se *sftp.StatusError
	if errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, download.ErrTimeout) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, net.ErrClosed) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection lost") || strings.Contains(msg, "use of closed") || strings.Contains(msg, "reset by peer") || strings.Contains(msg, "broken pipe")
}

func (s *source) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	src, id, c, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	fi, err := src.Stat(ctx, p)
	if broken(err) {
		s.r.drop(id, c)
	}
	return fi, err
}

func (s *source) ReadDir(ctx context.Context, p string) ([]fs.FileInfo, error) {
	src, id, c, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	l, err := src.ReadDir(ctx, p)
	if broken(err) {
		s.r.drop(id, c)
	}
	return l, err
}

func (s *source) OpenAt(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	src, id, c, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := src.OpenAt(ctx, p, off)
	if broken(err) {
		s.r.drop(id, c)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return &watchedReader{ReadCloser: rc, drop: func() { s.r.drop(id, c) }}, nil
}

// watchedReader drops the session when a read fails because it broke.
type watchedReader struct {
	io.ReadCloser
	drop func()
}

func (w *watchedReader) WriteTo(dst io.Writer) (int64, error) {
	n, err := io.Copy(dst, w.ReadCloser)
	if broken(err) {
		w.drop()
	}
	return n, err
}

func (w *watchedReader) Read(b []byte) (int, error) {
	n, err := w.ReadCloser.Read(b)
	if err != io.EOF && broken(err) {
		w.drop()
	}
	return n, err
}
