//go:build linux

package download_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/download"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// dialSSHD opens a real SFTP session to a real OpenSSH sshd.
func dialSSHD(t testing.TB, s *testenv.SSHD) *sftp.Client {
	t.Helper()
	conn, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User(),
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.Client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey.Signer.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial sshd: %v", err)
	}
	c, err := sftp.NewClient(conn, sftp.UseConcurrentReads(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func writeRandom(t testing.TB, p string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestGetTreeResumeAndConfinement(t *testing.T) {
	share := t.TempDir()
	big := writeRandom(t, filepath.Join(share, "dir with space", "big file.bin"), 3<<20)
	small := writeRandom(t, filepath.Join(share, "dir with space", "sub", "it's \"q\".txt"), 1000)
	top := writeRandom(t, filepath.Join(share, "x"), 100)
	etc := writeRandom(t, filepath.Join(share, "etc", "x"), 200)
	s := testenv.StartSSHD(t, share)
	src := &sftpSource{Client: dialSSHD(t, s), Root: share}
	ctx := testenv.Context(t, 2*time.Minute)

	dest := t.TempDir()
	res, err := download.Get(ctx, src, "/dir with space", dest, download.Options{Recursive: true, SHA256: true})
	if err != nil {
		t.Fatalf("get -r: %v", err)
	}
	if len(res.Files) != 2 || res.Fetched != int64(len(big)+len(small)) {
		t.Fatalf("get -r: %d files, fetched %d; want 2 files, %d bytes", len(res.Files), res.Fetched, len(big)+len(small))
	}
	for p, want := range map[string][]byte{"dir with space/big file.bin": big, "dir with space/sub/it's \"q\".txt": small} {
		got, err := os.ReadFile(filepath.Join(dest, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs (err %v)", p, err)
		}
	}
	if res.Files[0].SHA256 != sum(big) {
		t.Fatalf("sha256 %s, want %s", res.Files[0].SHA256, sum(big))
	}

	// Again without -f: complete files are skipped, nothing fetched.
	res, err = download.Get(ctx, src, "/dir with space", dest, download.Options{Recursive: true})
	if err != nil || res.Fetched != 0 || !res.Files[0].Skipped {
		t.Fatalf("second get -r: err %v, fetched %d; want skipped files", err, res.Fetched)
	}

	// A different existing file is never overwritten without -f.
	clash := filepath.Join(dest, "x")
	os.WriteFile(clash, []byte("mine"), 0o644)
	if _, err := download.Get(ctx, src, "/x", dest, download.Options{}); !errors.Is(err, download.ErrExists) {
		t.Fatalf("get over an existing file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(clash); string(b) != "mine" {
		t.Fatalf("existing file overwritten without -f")
	}
	if _, err := download.Get(ctx, src, "/x", dest, download.Options{Force: true}); err != nil {
		t.Fatalf("get -f: %v", err)
	}
	if b, _ := os.ReadFile(clash); !bytes.Equal(b, top) {
		t.Fatalf("get -f did not overwrite")
	}

	// Paths that try to climb out land inside dest under their base name.
	esc := t.TempDir()
	for _, p := range []string{"../x", "/../../x", "/etc/x", "../../etc/x"} {
		os.RemoveAll(esc)
		os.MkdirAll(esc, 0o755)
		if _, err := download.Get(ctx, src, p, esc, download.Options{}); err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		want := top
		if strings.Contains(p, "etc") {
			want = etc
		}
		if b, err := os.ReadFile(filepath.Join(esc, "x")); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("get %s: not in dest as x (err %v)", p, err)
		}
		if n := entries(t, esc); n != 1 {
			t.Fatalf("get %s left %d entries in dest, want 1", p, n)
		}
	}

	// Resume: a .part prefix with matching metadata is continued.
	rdest := t.TempDir()
	_, err = download.Get(ctx, src, "/dir with space/big file.bin", rdest, download.Options{})
	if err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(rdest, "big file.bin")
	meta := `{"origin":"","remote":"/dir with space/big file.bin","size":` + strconv.Itoa(len(big)) + `,"mtime":` + mtime(t, filepath.Join(share, "dir with space", "big file.bin")) + `}`
	os.WriteFile(final+download.MetaSuffix, []byte(meta), 0o644)
	os.WriteFile(final+download.PartSuffix, big[:1<<20], 0o644)
	os.Remove(final)
	res, err = download.Get(ctx, src, "/dir with space/big file.bin", rdest, download.Options{SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Files[0]; f.Resumed != 1<<20 || f.Fetched != int64(len(big)-1<<20) || f.SHA256 != sum(big) {
		t.Fatalf("resume: resumed %d fetched %d sha %s; want %d, %d, %s", f.Resumed, f.Fetched, f.SHA256, 1<<20, len(big)-1<<20, sum(big))
	}
	// A .part whose remote changed (different mtime) starts over.
	os.Remove(final)
	os.WriteFile(final+download.MetaSuffix, []byte(strings.Replace(meta, `"mtime":`, `"mtime":1`, 1)), 0o644)
	os.WriteFile(final+download.PartSuffix, bytes.Repeat([]byte{'z'}, 1<<20), 0o644)
	res, err = download.Get(ctx, src, "/dir with space/big file.bin", rdest, download.Options{SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Files[0]; f.Resumed != 0 || f.SHA256 != sum(big) {
		t.Fatalf("changed remote: resumed %d sha %s; want a fresh download", f.Resumed, f.SHA256)
	}
	if _, err := os.Stat(final + download.MetaSuffix); !os.IsNotExist(err) {
		t.Fatalf("meta file left after a finished download: %v", err)
	}

	// Links: a link to a file downloads as the file; a link to a
	// directory (here a loop) is skipped, so get -r ends.
	os.MkdirAll(filepath.Join(share, "links"), 0o755)
	os.Symlink("..", filepath.Join(share, "links", "loop"))
	os.Symlink("../x", filepath.Join(share, "links", "file.lnk"))
	ldest := t.TempDir()
	var notes strings.Builder
	res, err = download.Get(ctx, src, "/links", ldest, download.Options{Recursive: true, Progress: &download.Lines{W: &notes}})
	if err != nil || len(res.Files) != 1 || res.Files[0].Local != "links/file.lnk" {
		t.Fatalf("get -r of links: %v, %+v", err, res)
	}
	if b, _ := os.ReadFile(filepath.Join(ldest, "links", "file.lnk")); !bytes.Equal(b, top) {
		t.Fatalf("link to a file not downloaded as the file")
	}
	if !strings.Contains(notes.String(), "skipped /links/loop: not a regular file") {
		t.Fatalf("no note about the skipped directory link:\n%s", notes.String())
	}

	// A .part file that dsftp did not write is somebody's: kept, unless -f.
	fdest := t.TempDir()
	os.WriteFile(filepath.Join(fdest, "x.part"), []byte("my notes"), 0o644)
	if _, err := download.Get(ctx, src, "/x", fdest, download.Options{}); err == nil || !strings.Contains(err.Error(), "not an unfinished download of dsftp") {
		t.Fatalf("get over a foreign .part: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(fdest, "x.part")); string(b) != "my notes" {
		t.Fatalf("foreign .part changed: %q", b)
	}
	if _, err := download.Get(ctx, src, "/x", fdest, download.Options{Force: true}); err != nil {
		t.Fatalf("get -f over a foreign .part: %v", err)
	}

	// Missing file: one clear error.
	_, err = download.Get(ctx, src, "/nope", rdest, download.Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

func entries(t *testing.T, dir string) int {
	l, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func mtime(t *testing.T, p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(fi.ModTime().Unix(), 10)
}
