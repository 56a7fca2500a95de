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

// parse checks the flags and reads the --peer peers and --identity keys,
// before anything starts, so a typo is a usage error and nothing else.
func (f *clientFlags) parse() ([]peers.Peer, []ssh.Signer, error) {
	if f.connections < 1 {
		return nil, nil, usageError{fmt.Errorf("--connections %d: want at least 1", f.connections)}
	}
	if f.timeout <= 0 {
		return nil, nil, usageError{fmt.Errorf("--timeout %v: want a positive duration such as 10s", f.timeout)}
	}
	var ps []peers.Peer
	for _, s := range f.peers {
		p, err := peers.ParsePeerFlag(s)
		if err != nil {
			return nil, nil, usageError{err}
		}
		ps = append(ps, p)
	}
	var ids []ssh.Signer
	for _, file := range f.identities {
		s, err := pool.LoadIdentity(file)
		if err != nil {
			return nil, nil, usageError{err}
		}
		ids = append(ids, s)
	}
	return ps, ids, nil
}

// poolOptions are the session pool's options from the flags, with the
// given identities, ssh-agent and known_hosts.
func (f *clientFlags) poolOptions(ids []ssh.Signer, log *slog.Logger) *pool.Options {
	return &pool.Options{
		Connections:    f.connections,
		Timeout:        f.timeout,
		Identities:     ids,
		AgentSocket:    os.Getenv("SSH_AUTH_SOCK"),
		KnownHostsFile: f.knownHosts,
		Logger:         log,
	}
}
