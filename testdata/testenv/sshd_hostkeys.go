//go:build linux

package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// AddECDSAHostKey gives sshd a second host key, ECDSA P-256 (which Go's SSH
// client prefers over ed25519 by default), and restarts it. It returns the
// new key.
func (s *SSHD) AddECDSAHostKey(t testing.TB) Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(s.conf), "ssh_host_ecdsa_key")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("HostKey " + path + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.Restart(t)
	return Key{Signer: signer, Path: path}
}
