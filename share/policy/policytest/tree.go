//go:build linux

// Package policytest builds the shares that the policy's tests and the
// share's end-to-end tests both run on: a tree with symlinks that lead
// out, a home folder full of secrets, every form of private key, and
// what a listing must leave out.
package policytest

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SecretText is the content of the file outside the share. No test may
// ever see it come back from the server.
const SecretText = "TOP-SECRET-OUTSIDE-THE-SHARE-7f3a\n"

// SecretName is a file name that exists only outside the share; a
// directory listing containing it means the server listed outside.
const SecretName = "SECRET-MARKER-ONLY-OUTSIDE"

// Tree is a shared directory with files, inside symlinks and hostile
// symlinks, next to an outside directory holding the secret.
type Tree struct {
	Base    string // parent of Share and Outside
	Share   string // the shared directory
	Outside string // sibling directory the client must never reach
	Secret  string // absolute path of the secret file
}

// NewTree builds the tree. hostile adds the symlinks that point out
// (sshfs's diff -r would trip over them, since they are refused).
func NewTree(t testing.TB, hostile bool) *Tree {
	t.Helper()
	base := t.TempDir()
	f := &Tree{Base: base, Share: filepath.Join(base, "share"), Outside: filepath.Join(base, "outside")}
	f.Secret = filepath.Join(f.Outside, "secret")
	mk := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		mk(filepath.Dir(p))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write(f.Secret, []byte(SecretText))
	write(filepath.Join(f.Outside, SecretName), []byte(SecretText))
	mk(filepath.Join(f.Outside, "dir", SecretName))

	random := make([]byte, 3<<20+12345) // a few MiB, not a multiple of any packet size
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(f.Share, "a.txt"), []byte("hello from the share\n"))
	write(filepath.Join(f.Share, "name with spaces.txt"), []byte("spaces\n"))
	write(filepath.Join(f.Share, "sub", "b.txt"), []byte("in a subdirectory\n"))
	write(filepath.Join(f.Share, "sub", "deeper", "random.bin"), random)
	write(filepath.Join(f.Share, "sub", "deeper", "empty"), nil)
	mk(filepath.Join(f.Share, "emptydir"))
	link("a.txt", filepath.Join(f.Share, "link"))                                   // relative, inside
	link("../a.txt", filepath.Join(f.Share, "sub", "uplink"))                       // relative up, still inside
	link("sub", filepath.Join(f.Share, "dirlink"))                                  // directory symlink inside
	link(filepath.Join(f.Share, "sub", "b.txt"), filepath.Join(f.Share, "abslink")) // absolute, inside
	if hostile {
		link("../outside/secret", filepath.Join(f.Share, "out"))           // relative out
		link(f.Secret, filepath.Join(f.Share, "absout"))                   // absolute out
		link("../outside", filepath.Join(f.Share, "outdir"))               // directory out
		link(f.Outside, filepath.Join(f.Share, "absoutdir"))               // absolute directory out
		link("chain2", filepath.Join(f.Share, "chain1"))                   // chain: inside hop ...
		link("sub/../../outside/secret", filepath.Join(f.Share, "chain2")) // ... then out
		link("loop2", filepath.Join(f.Share, "loop1"))                     // loop
		link("loop1", filepath.Join(f.Share, "loop2"))
		link("/", filepath.Join(f.Share, "rootlink"))                                       // the machine's root
		link("../../../../../../../../etc/passwd", filepath.Join(f.Share, "sub", "passwd")) // deep relative out
		if err := syscall.Mkfifo(filepath.Join(f.Share, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Old access times, so that a read that updates atime shows (relatime
	// updates an atime older than the mtime).
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	_ = filepath.WalkDir(f.Share, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (d.Type().IsRegular() || d.IsDir()) {
			fi, _ := d.Info()
			_ = os.Chtimes(p, old, fi.ModTime())
		}
		return nil
	})
	return f
}

// HostileCase is one attempt to reach outside the share.
type HostileCase struct {
	Name string
	Path string // as a client would send it
}

// HostileCases returns the table of confinement attacks for fixture f.
func HostileCases(f *Tree) []HostileCase {
	return []HostileCase{
		{"dotdot", "../outside/secret"},
		{"dotdot chain", strings.Repeat("../", 40) + "outside/secret"},
		{"root dotdot", "/../outside/secret"},
		{"root dotdot doubled", "/..//../outside/secret"},
		{"dot then dotdot", "./../outside/secret"},
		{"dotdot inside path", "sub/../../outside/secret"},
		{"dotdot through dir symlink", "dirlink/../../outside/secret"},
		{"double slash etc", "//etc/passwd"},
		{"absolute etc", "/etc/passwd"},
		{"absolute secret", f.Secret},
		{"absolute secret doubled slash", "/" + f.Secret},
		{"relative symlink out", "out"},
		{"absolute symlink out", "absout"},
		{"directory symlink out", "outdir/secret"},
		{"absolute directory symlink out", "absoutdir/secret"},
		{"symlink chain out (first hop)", "chain1"},
		{"symlink chain out (second hop)", "chain2"},
		{"symlink loop", "loop1"},
		{"symlink to /", "rootlink/etc/passwd"},
		{"deep relative symlink out", "sub/passwd"},
		{"NUL byte", "a.txt\x00/../../outside/secret"},
		{"NUL only", "\x00"},
		{"very long name", strings.Repeat("n", 300)},
		{"very long path", strings.Repeat("d/", 3000) + "secret"},
		{"backslashes", `..\outside\secret`},
		{"percent encoding", "%2e%2e/outside/secret"},
		{"trailing slash on symlink out", "outdir/"},
		{"directory symlink out listing", "outdir"},
		{"absolute directory symlink listing", "absoutdir"},
		{"root symlink listing", "rootlink"},
	}
}
