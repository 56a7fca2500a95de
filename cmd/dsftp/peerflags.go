package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/dsftp/dsftp/peers"
)

// clientFlags are the peer-side flags of shell and get: peers given by URL
// and the keys to log in with. (Discovery adds peers on top of these.)
type clientFlags struct {
	peerURLs   []string
	identities []string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.peerURLs, "peer", nil,
		"add a peer by URL: sftp://USER@HOST:PORT/PATH?fingerprint=SHA256:…&name=NAME (repeatable)")
	cmd.Flags().StringArrayVarP(&f.identities, "identity", "i", nil,
		"private key file to log in to peers with (repeatable; default: ssh-agent and ~/.ssh/id_ed25519, id_ecdsa, id_rsa)")
}

// addPeers parses the --peer URLs into the registry.
func (f *clientFlags) addPeers(reg *peers.Registry) error {
	for _, u := range f.peerURLs {
		p, err := parsePeerURL(u)
		if err != nil {
			return usageError{err}
		}
		reg.Upsert(p)
	}
	return nil
}

// parsePeerURL reads sftp://[USER@]HOST[:PORT][/PATH][?fingerprint=SHA256:…&name=NAME].
func parsePeerURL(s string) (peers.Peer, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "sftp" || u.Host == "" {
		return peers.Peer{}, fmt.Errorf("--peer %q: want sftp://USER@HOST:PORT/PATH?fingerprint=SHA256:…", s)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "22"
	}
	q, err := query(u.RawQuery)
	if err != nil {
		return peers.Peer{}, fmt.Errorf("--peer %q: %w", s, err)
	}
	p := peers.Peer{
		ID:                 s,
		Name:               q.Get("name"),
		Addrs:              []string{net.JoinHostPort(host, port)},
		User:               u.User.Username(),
		Path:               u.Path,
		HostKeyFingerprint: q.Get("fingerprint"),
		Source:             peers.SourceFlag,
	}
	if p.HostKeyFingerprint != "" {
		if !strings.HasPrefix(p.HostKeyFingerprint, "SHA256:") {
			return peers.Peer{}, fmt.Errorf("--peer %q: fingerprint must look like SHA256:… (ssh-keygen -lf KEY shows it)", s)
		}
		p.ID = p.HostKeyFingerprint
	}
	if p.Name == "" {
		p.Name = host
	}
	return p, nil
}

// query parses a URL query like url.ParseQuery but keeps '+' as '+':
// SHA256 fingerprints are base64 and often hold one.
func query(raw string) (url.Values, error) {
	v := url.Values{}
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, val, _ := strings.Cut(kv, "=")
		k, err := url.PathUnescape(k)
		if err != nil {
			return nil, err
		}
		val, err = url.PathUnescape(val)
		if err != nil {
			return nil, err
		}
		v.Add(k, val)
	}
	return v, nil
}

// signers loads the --identity keys, or the usual defaults.
func (f *clientFlags) signers() ([]ssh.Signer, error) {
	var out []ssh.Signer
	load := func(path string, must bool) error {
		b, err := os.ReadFile(path)
		if err != nil {
			if must {
				return fmt.Errorf("--identity %s: %w", path, err)
			}
			return nil
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			if must {
				return fmt.Errorf("--identity %s: %w (keys with a passphrase: load them into ssh-agent instead)", path, err)
			}
			return nil
		}
		out = append(out, s)
		return nil
	}
	for _, p := range f.identities {
		if err := load(p, true); err != nil {
			return nil, usageError{err}
		}
	}
	if len(f.identities) > 0 {
		return out, nil
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			if s, err := agent.NewClient(c).Signers(); err == nil {
				out = append(out, s...)
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			_ = load(filepath.Join(home, ".ssh", n), false)
		}
	}
	return out, nil
}
