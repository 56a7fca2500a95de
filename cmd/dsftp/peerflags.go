package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
)

// clientFlags are the peer-side flags of shell and get, named and read as
// mount's: peers given on the command line, keys, host key trust and the
// session pool's limits. (Discovery adds peers on top of --peer.)
type clientFlags struct {
	peers       []string
	identities  []string
	knownHosts  string
	connections int
	timeout     time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.peers, "peer", nil, "add a peer: NAME=sftp://[user@]host[:port][/path][?fingerprint=SHA256:...] (repeatable)")
	fl.StringArrayVar(&f.identities, "identity", nil, "private key `FILE` to log in to peers with, besides ssh-agent and the per-run key (repeatable)")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts `FILE` for peers without a pinned fingerprint (default ~/.ssh/known_hosts)")
	fl.IntVar(&f.connections, "connections", pool.DefaultConnections, "SSH connections per peer at most")
	fl.DurationVar(&f.timeout, "timeout", pool.DefaultTimeout, "fail a remote operation when its peer sends nothing for this long")
}

// setup parses the flags into a registry holding the --peer peers and a
// pool logging to log; the caller closes the pool. selfID is this
// instance's own ID (its share's host key fingerprint), never listed.
func (f *clientFlags) setup(selfID string, log *slog.Logger) (*peers.Registry, *pool.Pool, error) {
	if f.connections < 1 {
		return nil, nil, usageError{fmt.Errorf("--connections %d: want at least 1", f.connections)}
	}
	if f.timeout <= 0 {
		return nil, nil, usageError{fmt.Errorf("--timeout %v: want a positive duration such as 10s", f.timeout)}
	}
	reg := peers.NewRegistry(selfID)
	for _, s := range f.peers {
		p, err := peers.ParsePeerFlag(s)
		if err != nil {
			return nil, nil, usageError{err}
		}
		reg.Upsert(p)
	}
	var ids []ssh.Signer
	for _, file := range f.identities {
		s, err := pool.LoadIdentity(file)
		if err != nil {
			return nil, nil, usageError{err}
		}
		ids = append(ids, s)
	}
	pl, err := pool.New(pool.Options{
		Connections:    f.connections,
		Timeout:        f.timeout,
		Identities:     ids,
		AgentSocket:    os.Getenv("SSH_AUTH_SOCK"),
		KnownHostsFile: f.knownHosts,
		Logger:         log,
	})
	if err != nil {
		return nil, nil, err
	}
	return reg, pl, nil
}
