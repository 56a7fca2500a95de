//go:build linux

package policytest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// Absent is a share with what must be left out beside what must
// be listed: keys in PEM and DER, links that leave the share or lead to
// hidden or ignored paths or to a key.
type Absent struct {
	Share  string
	Listed []string // every path a walk must find, sorted
	Absent []string // withheld paths: not listed, not found
}

// NewAbsent builds it.
func NewAbsent(t testing.TB) *Absent {
	t.Helper()
	base := t.TempDir()
	f := &Absent{Share: filepath.Join(base, "share")}
	write := func(rel string, b []byte) {
		p := filepath.Join(f.Share, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(f.Share, rel)); err != nil {
			t.Fatal(err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	write("docs/id_mykey", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	write("docs/key.der", der)
	write("docs/TODO.md", []byte("TODO: ship it\n"))
	write("docs/notes.txt", []byte("plain notes\n"))
	write("docs/empty", nil)
	write("src/main.go", []byte("package main // TODO tests\n"))
	write(".hidden/secret.txt", []byte("hidden\n"))
	write("build/out.bin", []byte("ignored\n"))
	write(".dsftpignore", []byte("build/\n"))
	if err := os.WriteFile(filepath.Join(base, "outside.txt"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link("../outside.txt", "out")
	link(filepath.Join(base, "outside.txt"), "absout")
	link("../..", "docs/updir") // leaves the share through its parent
	link(".hidden/secret.txt", "to-hidden")
	link("build/out.bin", "to-ignored")
	link("docs/id_mykey", "to-key")
	link("to-key", "chain-to-key")
	link("docs", "docs-link") // a directory inside: shown
	link("TODO.md", "docs/todo-link")
	link("missing", "dangling") // leads nowhere: shown as the link it is
	f.Listed = []string{"/dangling", "/docs", "/docs-link", "/docs/TODO.md", "/docs/empty", "/docs/notes.txt",
		"/docs/todo-link", "/src", "/src/main.go"}
	f.Absent = []string{"/docs/id_mykey", "/docs/key.der", "/out", "/absout", "/docs/updir", "/to-hidden",
		"/to-ignored", "/to-key", "/chain-to-key", "/docs-link/id_mykey", "/docs-link/key.der"}
	return f
}
