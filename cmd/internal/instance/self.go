package instance

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/user"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/reach"
)

// maxAdvertAddrs keeps adverts short: the best addresses are enough.
const maxAdvertAddrs = 8

// self is what this process advertises: its share, or, when it shares
// nothing (dsftp get; mount and shell with --no-share), a client-only
// advert. Either way the advert carries the client keys this process logs
// in to other shares with, which is what lets those shares accept it.
type self struct {
	// srv is the running share; nil for a client-only advert.
	srv *share.Server
	// signer signs the adverts: the share's host key, or for a client-only
	// advert a per-run identity key that never serves.
	signer ssh.Signer
	// clientKeys are this process's login keys (none for `dsftp share`).
	clientKeys []ssh.PublicKey
}

// shareSelf advertises the running share srv.
func shareSelf(srv *share.Server) self {
	return self{srv: srv, signer: srv.HostSigner()}
}

// clientSelf advertises a process that shares nothing, signed with
// identity (see newIdentity).
func clientSelf(identity ssh.Signer) self {
	return self{signer: identity}
}

// newIdentity returns a fresh ed25519 key for signing client-only adverts.
// It is made per run and never written anywhere: it only ties this run's
// adverts together (instance, sequence) and is this process's peer ID.
func newIdentity() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make an advert identity key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// clientOnly reports whether this process shares nothing.
func (s self) clientOnly() bool { return s.srv == nil }

// id is this process's peer ID, which its own registry must never list.
func (s self) id() string { return ssh.FingerprintSHA256(s.signer.PublicKey()) }

// addrs are the share's reachable addresses for adverts, best first
// (none for a client-only advert).
func (s self) addrs() []string {
	if s.srv == nil {
		return nil
	}
	local := reach.Local(s.srv.Addrs())
	out := make([]string, 0, len(local))
	for _, a := range local {
		// Loopback sorts last: it is advertised only by a share that
		// has nothing else (one machine, or --listen 127.0.0.1). Other
		// members dialing 127.0.0.1 would only meet their own share.
		if a.Addr().IsLoopback() && len(out) > 0 {
			break
		}
		if len(out) == maxAdvertAddrs {
			break
		}
		out = append(out, a.String())
	}
	return out
}

// DefaultName is the name adverts carry unless --name says otherwise:
// the OS user name.
func DefaultName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "peer"
}
