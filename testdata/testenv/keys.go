package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"
)

// NewSigner makes a fresh ed25519 key, for a host, client or advert key.
// t may be nil outside a test (a helper process): a failure then panics.
func NewSigner(t testing.TB) ssh.Signer {
	if t != nil {
		t.Helper()
	}
	s, _ := NewEd25519(t)
	return s
}

// NewEd25519 is NewSigner with the private key too, for tests that look
// for it where it must never appear (logs, adverts).
func NewEd25519(t testing.TB) (ssh.Signer, ed25519.PrivateKey) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	var s ssh.Signer
	if err == nil {
		s, err = ssh.NewSignerFromKey(priv)
	}
	if err != nil && t == nil {
		panic(err)
	}
	if err != nil {
		t.Helper()
		t.Fatal(err)
	}
	return s, priv
}
