// Package client is the client side of dsftp's shell and `dsftp get`:
// finding a peer in a registry, connecting to it through the peer session
// pool (peers/pool: the same sessions, deadlines and host key checks as the
// mount), and retrying while a discovered peer has not yet accepted our key.
package client

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/cmd/internal/download"
	"github.com/dsftp/dsftp/cmd/internal/shell"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
)

// Options configure a Remote.
type Options struct {
	// Registry holds the live peers.
	Registry *peers.Registry
	// Pool opens the SFTP sessions.
	Pool *pool.Pool
	// Settling reports whether discovery is still collecting the peers
	// that are online; nil means never (peers come from --peer only).
	Settling func() bool
}

// ErrNotAccepted is wrapped by Connect when the peer refused our client
// key: a dsftp share lets a key in only once it has seen the advert
// carrying it, so right after start this may pass by itself.
var ErrNotAccepted = errors.New("peer did not accept our key (yet)")

// notAcceptedError says what to do about ErrNotAccepted, in one line.
type notAcceptedError struct{ peer string }

func (e notAcceptedError) Error() string {
	return fmt.Sprintf("peer %s did not accept our key (yet): dsftp peers let others in once they see their advert, a few seconds after start; try again, or check that it trusts the same channel", e.peer)
}

func (e notAcceptedError) Is(target error) bool { return target == ErrNotAccepted }

// Remote implements shell.Remote over a registry and a pool.
type Remote struct {
	opts Options
}

var _ shell.Remote = (*Remote)(nil)

// New returns a Remote.
func New(opts Options) *Remote { return &Remote{opts: opts} }

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
func (r *Remote) Settling() bool { return r.opts.Settling != nil && r.opts.Settling() }

// Origin implements shell.Remote: the peer's ID (its host key
// fingerprint), so a .part file is never continued from another machine
// that took the same name.
func (r *Remote) Origin(name string) string {
	e, _ := r.opts.Registry.Get(name)
	return e.ID
}

// Connect implements shell.Remote. It opens a session at once, so a
// refused host key or an unreachable peer is reported by connect itself.
func (r *Remote) Connect(ctx context.Context, name string) (download.Source, error) {
	e, ok := r.opts.Registry.Get(name)
	if !ok {
		return nil, fmt.Errorf("peer %s is gone (it stopped advertising)", name)
	}
	id := e.ID
	src := &download.PoolSource{Pool: r.opts.Pool, Peer: func() (peers.Peer, error) {
		e, ok := r.opts.Registry.ByID(id)
		if !ok {
			return peers.Peer{}, fmt.Errorf("peer %s is gone (it stopped advertising)", name)
		}
		p := e.Peer
		p.Name = e.DisplayName
		return p, nil
	}}
	if _, err := src.Stat(ctx, "/"); err != nil {
		if errors.Is(err, pool.ErrAuth) {
			// A dsftp peer lets a key in once it has seen the advert
			// carrying it, which takes a moment after start.
			return nil, notAcceptedError{name}
		}
		return nil, err
	}
	return src, nil
}

// Disconnect implements shell.Remote: it closes the peer's sessions.
func (r *Remote) Disconnect(name string) {
	if e, ok := r.opts.Registry.Get(name); ok {
		r.opts.Pool.Forget(e.ID)
	}
}
