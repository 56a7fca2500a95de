//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestGetResumesAfterPeerDies(t *testing.T) {
	testenv.RequireRoot(t)
	share := t.TempDir()
	const size = 200 << 20
	want := writeBig(t, filepath.Join(share, "big.bin"), size>>20)
	sshd := testenv.StartSSHD(t, share)
	dest := t.TempDir()
	args := []string{"--identity", sshd.Client.Path, "--peer", "alice=" + sshd.URL(), "--sha256", "alice:big.bin", dest}

	// Ctrl-C (SIGINT) while the peer is frozen: get stops promptly and
	// keeps the .part file.
	p := testenv.StartNode(t, testenv.NodeOptions{}, append([]string{"get"}, args...)...)
	part := filepath.Join(dest, "big.bin.part")
	testenv.WaitFor(t, 60*time.Second, ".part to reach 20 MiB", func() bool { return fileSize(part) >= 20<<20 })
	if err := sshd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	p.Cmd.Process.Signal(syscall.SIGINT)
	if _, ok := p.Wait(10 * time.Second); !ok {
		t.Fatalf("get did not stop within 10s of Ctrl-C:\n%s", p.Output.String())
	}
	if out := p.Text(); !strings.Contains(out, "interrupted; the .part file is kept") || p.ExitCode() != 1 {
		t.Fatalf("get after Ctrl-C exited %d:\n%s", p.ExitCode(), p.Output)
	}
	if fileSize(part) < 20<<20 {
		t.Fatalf(".part not kept after Ctrl-C")
	}
	sshd.Signal(syscall.SIGCONT)

	// Again: it resumes; the peer dies mid-transfer.
	p = testenv.StartNode(t, testenv.NodeOptions{}, append([]string{"get"}, args...)...)
	p.WaitRecord(t, 30*time.Second, "resuming a download", "file", "big.bin")
	testenv.WaitFor(t, 60*time.Second, ".part to reach 50 MiB", func() bool { return fileSize(part) >= 50<<20 })
	// The peer dies mid-transfer: listener and the session's processes.
	if err := sshd.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err, ok := p.Wait(20 * time.Second)
	if !ok {
		t.Fatalf("get did not fail within 20s of the peer dying:\n%s", p.Output.String())
	}
	if err == nil || !strings.Contains(p.Text(), "connection to the peer was lost") {
		t.Fatalf("get after the peer died: err %v, output:\n%s", err, p.Output)
	}
	kept := fileSize(part)
	if kept < 50<<20 || kept >= size {
		t.Fatalf(".part holds %d bytes after the interruption", kept)
	}
	if _, err := os.Stat(filepath.Join(dest, "big.bin")); err == nil {
		t.Fatalf("big.bin exists after an interrupted get")
	}

	sshd.Restart(t)
	g := runDsftp(t, testenv.NodeOptions{Dir: t.TempDir()}, append([]string{"get"}, args...)...)
	if g.ExitCode() != 0 {
		t.Fatalf("resumed get exited %d:\n%s", g.ExitCode(), g.Output)
	}
	done := g.Records("downloaded", "peer", "alice")
	if len(done) != 1 {
		t.Fatalf("no record of the download:\n%s", g.Output)
	}
	fetched := done[0].Int("fetched")
	if resumed := done[0].Int("resumed"); resumed != kept || fetched != size-kept {
		t.Fatalf("get after the restart resumed at %d and fetched %d bytes, want %d (the rest after %d):\n%s", resumed, fetched, size-kept, kept, g.Output)
	}
	if out := g.Text(); !strings.Contains(out, "sha256 "+want+"  big.bin") {
		t.Fatalf("get after the restart did not print the right sha256 %s:\n%s", want, out)
	}
	if got := fileSHA(t, filepath.Join(dest, "big.bin")); got != want {
		t.Fatalf("big.bin sha256 %s, want %s", got, want)
	}
	for _, leftover := range []string{"big.bin.part", "big.bin.part.meta"} {
		if _, err := os.Stat(filepath.Join(dest, leftover)); err == nil {
			t.Fatalf("%s left behind", leftover)
		}
	}
	t.Logf("killed the peer at %d of %d bytes; the get after its restart fetched %d", kept, size, fetched)
}

func TestGetNames(t *testing.T) {
	testenv.RequireRoot(t)
	share := t.TempDir()
	writeFile(t, share, "my file.txt", "spaces")
	writeFile(t, share, "x", "top x")
	writeFile(t, share, "etc/x", "etc x, longer")
	writeFile(t, share, "tree/a.txt", "a")
	writeFile(t, share, "tree/b/c.txt", "c")
	sshd := testenv.StartSSHD(t, share)
	base := []string{"--identity", sshd.Client.Path, "--peer", "alice=" + sshd.URL()}
	get := func(dir string, args ...string) (string, int) {
		n := runDsftp(t, testenv.NodeOptions{Dir: dir}, append(append([]string{"get"}, base...), args...)...)
		return n.Text(), n.ExitCode()
	}
	root := t.TempDir()
	dest := filepath.Join(root, "dest")
	os.Mkdir(dest, 0o755)

	if out, code := get(dest, "alice:my file.txt"); code != 0 || !strings.Contains(out, "my file.txt: done, 6 B") {
		t.Fatalf("get of a name with spaces: %d\n%s", code, out)
	}
	if out, code := get(root, "alice:../x", "dest/"); code != 0 {
		t.Fatalf("get alice:../x: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "x")); string(b) != "top x" {
		t.Fatalf("alice:../x landed as %q", b)
	}
	if out, code := get(root, "alice:/etc/x", "dest"); code != 1 || !strings.Contains(out, "already exists (use -f to overwrite)") {
		t.Fatalf("get over a different existing file: %d\n%s", code, out)
	}
	if out, code := get(root, "-f", "alice:/etc/x", "dest"); code != 0 {
		t.Fatalf("get -f alice:/etc/x: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "x")); string(b) != "etc x, longer" {
		t.Fatalf("alice:/etc/x landed as %q", b)
	}
	if out, code := get(dest, "-r", "alice:/"); code != 0 || !strings.Contains(out, "alice/tree/b/c.txt: done") {
		t.Fatalf("get -r alice:/: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "alice", "tree", "b", "c.txt")); string(b) != "c" {
		t.Fatalf("get -r: c.txt = %q", b)
	}
	if l, _ := os.ReadDir(root); len(l) != 1 {
		t.Fatalf("downloads escaped dest: %d entries in %s", len(l), root)
	}

	if out, code := get(dest, "--wait", "1s", "alcie:x"); code != 1 || !strings.Contains(out, `unknown peer "alcie"`) || !strings.Contains(out, `did you mean "alice"?`) {
		t.Fatalf("unknown peer: %d\n%s", code, out)
	}
	if out, code := get(dest, "alice:nope"); code != 1 || !strings.Contains(out, "dsftp: /nope: no such file or directory") {
		t.Fatalf("missing file: %d\n%s", code, out)
	}
	if out, code := get(dest, "nocolon"); code != 2 || !strings.Contains(out, "want PEER:PATH") {
		t.Fatalf("bad argument: %d\n%s", code, out)
	}
	if out, code := get(dest, "alice:tree"); code != 1 || !strings.Contains(out, "is a directory: use get -r") {
		t.Fatalf("directory without -r: %d\n%s", code, out)
	}
}
