//go:build linux

package share

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// absentFixture is a share with what must be left out beside what must
// be listed: keys in PEM and DER, links that leave the share or lead to
// hidden or ignored paths or to a key.
type absentFixture struct {
	share  string
	listed []string // every path a walk must find, sorted
	absent []string // withheld paths: not listed, not found
}

func newAbsentFixture(t testing.TB) *absentFixture {
	t.Helper()
	base := t.TempDir()
	f := &absentFixture{share: filepath.Join(base, "share")}
	write := func(rel string, b []byte) {
		p := filepath.Join(f.share, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(f.share, rel)); err != nil {
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
	write(IgnoreFile, []byte("build/\n"))
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
	f.listed = []string{"/dangling", "/docs", "/docs-link", "/docs/TODO.md", "/docs/empty", "/docs/notes.txt",
		"/docs/todo-link", "/src", "/src/main.go"}
	f.absent = []string{"/docs/id_mykey", "/docs/key.der", "/out", "/absout", "/docs/updir", "/to-hidden",
		"/to-ignored", "/to-key", "/chain-to-key", "/docs-link/id_mykey", "/docs-link/key.der"}
	return f
}

// TestListingLeavesOut: what the share withholds is absent, exactly as a
// hidden path is: not listed, and stat, lstat, open, opendir, readlink
// and realpath all say "no such file". The sharing side names each left
// out file once, however often it is listed.
func TestListingLeavesOut(t *testing.T) {
	f := newAbsentFixture(t)
	ts := startTestShare(t, f.share, func(o *Options) { o.SecretDirs = []string{} })
	c := ts.sftpClient(t)

	for range 3 {
		if got := walkRemote(t, c, "/"); !slices.Equal(got, f.listed) {
			t.Fatalf("walk of the share:\n got %q\nwant %q", got, f.listed)
		}
	}
	for _, p := range append(f.absent, "/.hidden/secret.txt", "/build/out.bin") {
		checkAbsent(t, c, p)
	}
	if names := listNames(t, c, "/docs-link"); !slices.Equal(names, listNames(t, c, "/docs")) || slices.Contains(names, "id_mykey") {
		t.Errorf("/docs-link lists %q; want what /docs lists, without the keys", names)
	}
	if target, err := c.ReadLink("/dangling"); err != nil || target != "missing" {
		t.Errorf("readlink /dangling = %q, %v; want missing", target, err)
	}
	if b, err := readAllRemote(c, "/docs-link/todo-link"); err != nil || string(b) != "TODO: ship it\n" {
		t.Errorf("read /docs-link/todo-link = %q, %v", b, err)
	}
	logs := ts.logs.String()
	for _, p := range []string{"/docs/id_mykey", "/docs/key.der", "/out", "/docs/updir", "/to-hidden", "/to-key"} {
		if n := strings.Count(logs, `msg="left a file out of the share" path=`+p+" "); n != 1 {
			t.Errorf("%s named %d times as left out; want once", p, n)
		}
	}
	for _, p := range []string{"/.hidden", "/build", "/docs/notes.txt", "/dangling"} {
		if strings.Contains(logs, "path="+p+" ") {
			t.Errorf("%s is named in the log; only withheld files are", p)
		}
	}
}

// checkAbsent asserts that every operation on p says "no such file".
func checkAbsent(t *testing.T, c *sftp.Client, p string) {
	t.Helper()
	if _, err := c.Stat(p); !isNotExist(err) {
		t.Errorf("stat %s: %v; want not found", p, err)
	}
	if _, err := c.Lstat(p); !isNotExist(err) {
		t.Errorf("lstat %s: %v; want not found", p, err)
	}
	if b, err := readAllRemote(c, p); !isNotExist(err) {
		t.Errorf("open %s = %d bytes, %v; want not found", p, len(b), err)
	}
	if _, err := c.ReadDir(p); !isNotExist(err) {
		t.Errorf("readdir %s: %v; want not found", p, err)
	}
	if _, err := c.ReadLink(p); !isNotExist(err) {
		t.Errorf("readlink %s: %v; want not found", p, err)
	}
	if rp, err := c.RealPath(p); !isNotExist(err) {
		t.Errorf("realpath %s = %q, %v; want not found", p, rp, err)
	}
}

// TestListingVerdictsRemembered: a repeated listing reads no file, a file
// that changes is read again, and a key written into a listed file makes
// it disappear.
func TestListingVerdictsRemembered(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), []byte("text\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts := startTestShareHook(t, dir, nil, func(s *Server) { s.secrets.verdicts.settle = 0 })
	c := ts.sftpClient(t)
	vc := ts.srv.secrets.verdicts
	if names := listNames(t, c, "/"); len(names) != n {
		t.Fatalf("listed %d files; want %d", len(names), n)
	}
	cold := vc.scans.Load()
	if cold != n {
		t.Errorf("first listing scanned %d files; want %d", cold, n)
	}
	for range 3 {
		listNames(t, c, "/")
		for i := range 10 {
			if _, err := c.Stat(fmt.Sprintf("/f%03d.txt", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if warm := vc.scans.Load() - cold; warm != 0 {
		t.Errorf("repeated listings and stats scanned %d files; want 0", warm)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: make([]byte, 64)})
	if err := os.WriteFile(filepath.Join(dir, "f007.txt"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	names := listNames(t, c, "/")
	if slices.Contains(names, "f007.txt") || len(names) != n-1 {
		t.Errorf("after a key was written into f007.txt the listing has %d names (f007.txt: %v)", len(names), slices.Contains(names, "f007.txt"))
	}
	if again := vc.scans.Load() - cold; again != 1 {
		t.Errorf("after one file changed, the listing scanned %d files; want 1", again)
	}
}

// TestVerdictCacheBound: the cache never holds more than maxVerdicts, and
// keeps the most recent ones.
func TestVerdictCacheBound(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	c := newVerdictCache()
	c.settle = 0
	k, _ := keyOf(fi)
	for i := range 3 * maxVerdicts {
		k.ino = uint64(i)
		c.mu.Lock()
		c.putLocked(k, verdict{why: "x"})
		c.mu.Unlock()
		if c.len() > maxVerdicts {
			t.Fatalf("after %d verdicts the cache holds %d; bound %d", i+1, c.len(), maxVerdicts)
		}
	}
	c.put(fi, verdict{why: "real"}, time.Now().Add(time.Hour))
	if v, ok := c.get(fi); !ok || v.why != "real" {
		t.Errorf("the latest verdict is gone: %v %v", v, ok)
	}
	fresh := newVerdictCache()
	fresh.put(fi, verdict{}, time.Now())
	if _, ok := fresh.get(fi); ok {
		t.Errorf("a verdict on a file changed %v ago was remembered; settle is %v", time.Since(fi.ModTime()), fresh.settle)
	}
}
