//go:build linux

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// writeWithheld fills dir with ordinary files beside what the share
// withholds: a PEM and a DER private key under plain names, symlinks that
// leave the share, and symlinks to a hidden and to an ignored file. It
// returns the ordinary files by path relative to dir, with their content.
func writeWithheld(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	photo := make([]byte, 300<<10)
	if _, err := rand.Read(photo); err != nil {
		t.Fatal(err)
	}
	ordinary := map[string][]byte{
		"docs/TODO.md":   []byte("TODO: water the plants\n"),
		"docs/notes.txt": []byte("nothing to do here\n"),
		"src/main.go":    []byte("package main\n\n// TODO: tests\nfunc main() {}\n"),
		"photos/cat.bin": photo,
	}
	withheld := map[string][]byte{
		"docs/id_mykey":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"docs/key.der":       der,
		".hidden/secret.txt": []byte("TODO: hidden\n"),
		"build/out.bin":      []byte("TODO: ignored\n"),
		".dsftpignore":       []byte("build/\n"),
	}
	all := maps.Clone(ordinary)
	maps.Copy(all, withheld)
	for rel, b := range all {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(filepath.Dir(dir), "outside.txt")
	if err := os.WriteFile(outside, []byte("TODO: outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"out":            "../outside.txt",
		"docs/absout":    outside,
		"docs/parent":    "../..",
		"to-hidden":      ".hidden/secret.txt",
		"to-ignored":     "build/out.bin",
		"src/to-key":     "../docs/id_mykey",
		"photos/to-root": "/",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return ordinary
}

// TestMountEverydayTools: over a real `dsftp mount` of a `dsftp share`
// that holds keys and links out, cp -a, rsync -a, tar c, grep -r and
// find -type f | xargs cat all exit 0 and see exactly the ordinary
// files: what the share withholds is absent, not an error. ls -la shows
// "." and ".." in the mount root and in a peer's directories. The
// sharing side names each file it left out.
func TestMountEverydayTools(t *testing.T) {
	testenv.RequireFUSE(t)
	tools := testenv.Require(t, "cp", "rsync", "tar", "grep", "find", "xargs", "ls", "sh")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "shared")
	ordinary := writeWithheld(t, dir)
	key := testenv.NewKey(t, tmp, "client")
	port := strconv.Itoa(testenv.FreePort(t))
	share := startShareBinary(t, dir, "--listen", "127.0.0.1:"+port, "--authorized-keys", key.Path+".pub",
		"--discovery", "off", "--log-level", "info")
	_, fp := share.ShareReady(t)
	mnt := mountDir(t)
	p := testenv.StartNode(t, testenv.NodeOptions{}, "mount", mnt, "--no-share", "--discovery", "off",
		"--identity", key.Path, "--peer", "alice=sftp://x@127.0.0.1:"+port+"/?fingerprint="+fp)
	peer := filepath.Join(mnt, "alice")
	testenv.WaitFor(t, 30*time.Second, "alice's directory in the mount", func() bool {
		_, err := os.Stat(filepath.Join(peer, "docs", "TODO.md"))
		return err == nil
	})
	out := t.TempDir()
	run := func(name string, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(testenv.Context(t, 60*time.Second), name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("%s %s: %v; want exit 0\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
		}
		return got
	}

	run(tools[0], "-a", peer, filepath.Join(out, "cp"))
	checkCopy(t, "cp -a", filepath.Join(out, "cp"), ordinary)
	run(tools[1], "-a", peer+"/", filepath.Join(out, "rsync")+"/")
	checkCopy(t, "rsync -a", filepath.Join(out, "rsync"), ordinary)
	tarball := filepath.Join(out, "alice.tar")
	run(tools[2], "-c", "-f", tarball, "-C", peer, ".")
	if err := os.Mkdir(filepath.Join(out, "tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(tools[2], "-x", "-f", tarball, "-C", filepath.Join(out, "tar"))
	checkCopy(t, "tar c", filepath.Join(out, "tar"), ordinary)

	grep := strings.Split(strings.TrimSpace(string(run(tools[3], "-r", "-l", "TODO", peer))), "\n")
	slices.Sort(grep)
	if want := []string{filepath.Join(peer, "docs/TODO.md"), filepath.Join(peer, "src/main.go")}; !slices.Equal(grep, want) {
		t.Errorf("grep -r -l TODO:\n got %q\nwant %q", grep, want)
	}
	cat := run(tools[7], "-c", `find "$1" -type f | LC_ALL=C sort | xargs cat`, "sh", peer)
	var want []byte
	for _, rel := range slices.Sorted(maps.Keys(ordinary)) {
		want = append(want, ordinary[rel]...)
	}
	if !bytes.Equal(cat, want) {
		t.Errorf("find -type f | xargs cat: %d bytes; want the %d bytes of the ordinary files", len(cat), len(want))
	}

	for _, d := range []string{mnt, peer, filepath.Join(peer, "docs")} {
		ls := string(run(tools[6], "-la", d))
		for _, name := range []string{".", ".."} {
			if !regexp.MustCompile(`(?m)^d\S+ .* ` + regexp.QuoteMeta(name) + `$`).MatchString(ls) {
				t.Errorf("ls -la %s lacks %q as a directory:\n%s", d, name, ls)
			}
		}
	}

	// The banner is for the user: what it says is the subject here.
	if banner := share.Stdout(); !strings.Contains(banner, "not shared    hidden files") || !strings.Contains(banner, "private keys, symlinks leading out") {
		t.Errorf("the banner does not say that keys and links out are not shared:\n%s", banner)
	}
	for _, rel := range []string{"/docs/id_mykey", "/docs/key.der", "/out", "/docs/absout", "/docs/parent", "/to-hidden", "/to-ignored", "/src/to-key", "/photos/to-root"} {
		if share.Count("left a file out of the share", "path", rel) == 0 {
			t.Errorf("the share did not name %s as left out:\n%s", rel, share.Output)
		}
	}
	stop(t, p, mnt, syscall.SIGTERM)
}

// checkCopy asserts that the tree at dir holds exactly the ordinary
// files (and their directories), with their content.
func checkCopy(t *testing.T, how, dir string, ordinary map[string][]byte) {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return nil
		}
		got = append(got, rel)
		if !d.Type().IsRegular() {
			t.Errorf("%s copied %s, a %v", how, rel, d.Type())
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && !bytes.Equal(b, ordinary[rel]) {
			t.Errorf("%s: %s differs from the share's (%d vs %d bytes)", how, rel, len(b), len(ordinary[rel]))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := slices.Sorted(maps.Keys(ordinary)); !slices.Equal(got, want) {
		t.Errorf("%s copied:\n got %q\nwant %q", how, got, want)
	}
}
