//go:build linux

package fs_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// tree writes a test share into dir and returns the SHA-256 of every
// regular file by relative path.
func tree(t *testing.T, dir string, bigSize int) map[string]string {
	t.Helper()
	sums := map[string]string{}
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		sums[rel] = hex.EncodeToString(s[:])
	}
	write("hello.txt", []byte("hello from the peer\n"))
	write("empty", nil)
	write("with space/needle file.txt", []byte("line one\nthe NEEDLE is here\n"))
	for i := range 30 {
		write(fmt.Sprintf("many/d%d/f%02d.txt", i%3, i), bytes.Repeat([]byte{byte('a' + i%26)}, 100*i+1))
	}
	big := make([]byte, bigSize)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	write("big.bin", big)
	if err := os.Symlink("hello.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exec.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sums
}

// mountProc is a running `dsftp mount`.
type mountProc struct {
	dir  string
	proc *testenv.Node
}

// startMount runs the real dsftp binary and waits until it has mounted.
func startMount(t *testing.T, dir string, args ...string) *mountProc {
	t.Helper()
	testenv.RequireFUSE(t)
	testenv.CleanupUnmount(t, dir)
	all := append([]string{"mount", dir, "--log-level", "debug"}, args...)
	if !slices.Contains(args, "--share") {
		all = append(all, "--no-share") // never serve the package directory on :2200
	}
	p := testenv.StartNode(t, testenv.NodeOptions{}, all...)
	m := &mountProc{dir: dir, proc: p}
	t.Cleanup(func() { m.stop(t) })
	p.WaitRecord(t, 60*time.Second, "mounted")
	return m
}

// stop sends SIGTERM and checks the mount goes away.
func (m *mountProc) stop(t *testing.T) {
	select {
	case <-m.proc.Done():
		m.checkRaces(t)
		return
	default:
	}
	_ = m.proc.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := m.proc.Wait(15 * time.Second); !ok {
		// A goroutine dump (in the process output) shows what hangs.
		_ = m.proc.Cmd.Process.Signal(syscall.SIGQUIT)
		m.proc.Wait(5 * time.Second)
		t.Errorf("dsftp mount did not exit within 15 s of SIGTERM")
		return
	}
	if testenv.Mounted(m.dir) {
		t.Errorf("%s still mounted after SIGTERM", m.dir)
	}
	m.checkRaces(t)
}

// checkRaces fails the test when the race detector reported in the
// mount process (built with -race when the tests are).
func (m *mountProc) checkRaces(t *testing.T) {
	// The race detector's report is text, never a log record.
	if strings.Contains(m.proc.Text(), "WARNING: DATA RACE") {
		t.Errorf("data race in dsftp mount")
	}
}

func fileSize(t *testing.T, p string) int {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}

func mountDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "peers")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func relFind(t *testing.T, dir string) []string {
	t.Helper()
	out := run(t, "find", dir, "-printf", "%P %y\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(lines)
	return lines
}

// TestMountOpenSSH drives the usual tools over a real mount of a real
// OpenSSH sshd (internal-sftp).
func TestMountOpenSSH(t *testing.T) {
	src := t.TempDir()
	sums := tree(t, src, 12<<20)
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	startMount(t, mnt, "--timeout", "5s", "--identity", sshd.Client.Path, "--peer", "alpha="+sshd.URL())
	if got := run(t, "ls", mnt); got != "alpha\n" {
		t.Fatalf("ls of the root = %q, want alpha", got)
	}
	checkTools(t, src, filepath.Join(mnt, "alpha"), sums)
}

// startShare runs `dsftp share` on a free loopback port for the key in
// authKeys and returns its --peer URL.
func startShare(t *testing.T, dir, authKeys string) string {
	t.Helper()
	return shareURL(t, testenv.StartNode(t, testenv.NodeOptions{}, "share", dir, "--listen", "127.0.0.1:0", "--authorized-keys", authKeys))
}

// shareURL is the --peer URL of a node's share on loopback.
func shareURL(t *testing.T, n *testenv.Node) string {
	t.Helper()
	port, fp := n.ShareReady(t)
	return "sftp://dsftp@127.0.0.1:" + strconv.Itoa(port) + "/?fingerprint=" + fp
}

// TestMountDsftpShare runs the same tools against `dsftp share`.
func TestMountDsftpShare(t *testing.T) {
	src := t.TempDir()
	sums := tree(t, src, 12<<20)
	key := testenv.NewKey(t, t.TempDir(), "id")
	ak := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(ak, []byte(key.Public()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startShare(t, src, ak)
	mnt := mountDir(t)
	startMount(t, mnt, "--timeout", "5s", "--identity", key.Path, "--peer", "beta="+url)
	checkTools(t, src, filepath.Join(mnt, "beta"), sums)
}

// TestMountAlsoShares: a mount shares its --share directory; a second
// mount reads it through that share.
func TestMountAlsoShares(t *testing.T) {
	src := t.TempDir()
	sums := tree(t, src, 1<<20)
	key := testenv.NewKey(t, t.TempDir(), "id")
	ak := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(ak, []byte(key.Public()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startMount(t, mountDir(t), "--share", src, "--listen", "127.0.0.1:0", "--authorized-keys", ak)
	url := shareURL(t, a.proc)
	mnt := mountDir(t)
	startMount(t, mnt, "--identity", key.Path, "--peer", "a="+url)
	run(t, "diff", "-r", src, filepath.Join(mnt, "a"))
	if got := sha(t, filepath.Join(mnt, "a", "big.bin")); got != sums["big.bin"] {
		t.Errorf("big.bin through the mount's share: checksum differs")
	}
}

// checkTools runs diff -r, find, sha256sum, grep -r, cp -a, stat, du, df
// and friends on a mounted peer directory against its source.
func checkTools(t *testing.T, src, peer string, sums map[string]string) {
	t.Helper()
	run(t, "diff", "-r", src, peer)
	if got, want := relFind(t, peer), relFind(t, src); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("find differs:\n got %v\nwant %v", got, want)
	}
	for rel, want := range sums {
		if got := sha(t, filepath.Join(peer, rel)); got != want {
			t.Errorf("sha256 of %s = %s, want %s", rel, got, want)
		}
	}
	out := run(t, "sha256sum", filepath.Join(peer, "big.bin"))
	if !strings.HasPrefix(out, sums["big.bin"]) {
		t.Errorf("sha256sum big.bin: %s, want %s", out, sums["big.bin"])
	}
	// Re-read: same bytes (from the page cache or the peer).
	if got := sha(t, filepath.Join(peer, "big.bin")); got != sums["big.bin"] {
		t.Errorf("second read of big.bin differs")
	}
	if got := run(t, "grep", "-r", "-l", "NEEDLE", peer); strings.TrimSpace(got) != filepath.Join(peer, "with space/needle file.txt") {
		t.Errorf("grep -r found %q", got)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	run(t, "cp", "-a", peer, cp)
	run(t, "diff", "-r", src, cp)

	// Symlinks stay symlinks.
	if target, err := os.Readlink(filepath.Join(peer, "link")); err != nil || target != "hello.txt" {
		t.Errorf("readlink = %q, %v; want hello.txt", target, err)
	}
	// stat: size, mode as on the peer (the mount is read-only all the
	// same), owner is us.
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(peer, "exec.sh"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o755 || st.Size != 10 || st.Uid != uint32(os.Getuid()) {
		t.Errorf("stat exec.sh: mode %o size %d uid %d; want 0755, 10, %d", st.Mode&0o7777, st.Size, st.Uid, os.Getuid())
	}
	if out := run(t, "stat", "-c", "%s %F", filepath.Join(peer, "big.bin")); out != fmt.Sprintf("%d regular file\n", fileSize(t, filepath.Join(src, "big.bin"))) {
		t.Errorf("stat big.bin: %q", out)
	}
	// du counts blocks; df works (OpenSSH has statvfs@openssh.com).
	du := strings.Fields(run(t, "du", "-s", "-k", peer))[0]
	if du == "0" {
		t.Errorf("du -s reports 0 KiB")
	}
	df := run(t, "df", "-k", peer)
	if !strings.Contains(df, "dsftp") || strings.Fields(strings.Split(df, "\n")[1])[1] == "0" {
		t.Errorf("df shows no size: %s", df)
	}
	// A missing file is ENOENT.
	if _, err := os.Stat(filepath.Join(peer, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a missing file: %v, want ENOENT", err)
	}
	// xattrs answer "none" (ENOTSUP once the kernel has learned that the
	// filesystem has none, ENODATA from the node itself), never an I/O
	// error and never a value.
	buf := make([]byte, 64)
	for _, name := range []string{"user.x", "security.selinux", "system.posix_acl_access"} {
		_, err := syscall.Getxattr(filepath.Join(peer, "hello.txt"), name, buf)
		if err != syscall.ENOTSUP && err != syscall.ENODATA {
			t.Errorf("getxattr %s: %v, want ENOTSUP or ENODATA", name, err)
		}
	}
	if n, err := syscall.Listxattr(filepath.Join(peer, "hello.txt"), buf); err != syscall.ENOTSUP && !(err == nil && n == 0) {
		t.Errorf("listxattr: %d, %v; want no names", n, err)
	}
}

// TestWritesAreEROFS checks every kind of write.
func TestWritesAreEROFS(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<10)
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	startMount(t, mnt, "--identity", sshd.Client.Path, "--peer", "alpha="+sshd.URL())
	p := filepath.Join(mnt, "alpha")
	f := filepath.Join(p, "hello.txt")
	checks := map[string]error{
		"create":      os.WriteFile(filepath.Join(p, "new"), []byte("x"), 0o644),
		"write":       func() error { fh, err := os.OpenFile(f, os.O_WRONLY, 0); fh.Close(); return err }(),
		"rdwr":        func() error { fh, err := os.OpenFile(f, os.O_RDWR, 0); fh.Close(); return err }(),
		"truncate":    os.Truncate(f, 0),
		"mkdir":       os.Mkdir(filepath.Join(p, "d"), 0o755),
		"rmdir":       syscall.Rmdir(filepath.Join(p, "many")),
		"unlink":      os.Remove(f),
		"rename":      os.Rename(f, filepath.Join(p, "moved")),
		"symlink":     os.Symlink("x", filepath.Join(p, "sl")),
		"link":        os.Link(f, filepath.Join(p, "hl")),
		"chmod":       os.Chmod(f, 0o777),
		"chown":       os.Chown(f, 1, 1),
		"utimes":      os.Chtimes(f, time.Now(), time.Now()),
		"setxattr":    syscall.Setxattr(f, "user.x", []byte("1"), 0),
		"root mkdir":  os.Mkdir(filepath.Join(mnt, "x"), 0o755),
		"root create": os.WriteFile(filepath.Join(mnt, "x"), nil, 0o644),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(src, "hello.txt"))
	if err != nil || string(b) != "hello from the peer\n" {
		t.Errorf("source file changed: %q %v", b, err)
	}
}

// TestParallelReadersTwoPeers reads with 16 goroutines across two peers.
func TestParallelReadersTwoPeers(t *testing.T) {
	srcA, srcB := t.TempDir(), t.TempDir()
	sumsA := tree(t, srcA, 4<<20)
	sumsB := tree(t, srcB, 4<<20)
	a := testenv.StartSSHD(t, srcA)
	b := testenv.StartSSHD(t, srcB)
	mnt := mountDir(t)
	startMount(t, mnt, "--identity", a.Client.Path, "--identity", b.Client.Path,
		"--peer", "a="+a.URL(), "--peer", "b="+b.URL())
	type job struct{ path, want string }
	var jobs []job
	for rel, sum := range sumsA {
		jobs = append(jobs, job{filepath.Join(mnt, "a", rel), sum})
	}
	for rel, sum := range sumsB {
		jobs = append(jobs, job{filepath.Join(mnt, "b", rel), sum})
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].path < jobs[j].path })
	ch := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for range 16 {
		wg.Go(func() {
			for j := range ch {
				f, err := os.Open(j.path)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				h := sha256.New()
				_, err = io.Copy(h, f)
				f.Close()
				if got := hex.EncodeToString(h.Sum(nil)); err != nil || got != j.want {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v sum %s want %s", j.path, err, got, j.want))
					mu.Unlock()
				}
			}
		})
	}
	for range 2 { // twice: the second round also exercises reopen and caching
		for _, j := range jobs {
			ch <- j
		}
	}
	close(ch)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d reads failed:\n%s", len(failures), strings.Join(failures, "\n"))
	}
}

// TestChangesAppearAfterTTL: listings, attributes and contents cached by
// dsftp and the kernel are refreshed once --attr-ttl has passed.
func TestChangesAppearAfterTTL(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<10)
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	startMount(t, mnt, "--attr-ttl", "1s", "--identity", sshd.Client.Path, "--peer", "a="+sshd.URL())
	dir := filepath.Join(mnt, "a", "many", "d0")
	var before []os.DirEntry
	for range 3 { // the kernel caches the listing from the second one on
		var err error
		if before, err = os.ReadDir(dir); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "a", "hello.txt")); err != nil || string(b) != "hello from the peer\n" {
		t.Fatalf("hello.txt: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(src, "many", "d0", "new.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("changed, and longer than before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the new file to be listed", func() bool {
		es, err := os.ReadDir(dir)
		return err == nil && len(es) == len(before)+1
	})
	testenv.WaitFor(t, 15*time.Second, "the changed content", func() bool {
		b, err := os.ReadFile(filepath.Join(mnt, "a", "hello.txt"))
		return err == nil && string(b) == "changed, and longer than before\n"
	})
}

// TestTailFollowsGrowth: `tail -f` on a file that grows on the peer shows
// the appended lines (once --attr-ttl has passed), as it does on sshfs;
// a fresh cat sees the whole file. Before, reads stopped at the size seen
// at open and tail printed nothing new.
func TestTailFollowsGrowth(t *testing.T) {
	tools := testenv.Require(t, "tail")
	src := t.TempDir()
	log := filepath.Join(src, "app.log")
	if err := os.WriteFile(log, []byte("line 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	startMount(t, mnt, "--attr-ttl", "1s", "--identity", sshd.Client.Path, "--peer", "a="+sshd.URL())
	tail := testenv.Start(t, nil, tools[0], "-f", "-s", "0.2", filepath.Join(mnt, "a", "app.log"))
	tail.WaitOutput(t, "line 1", 10*time.Second)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 2; i <= 4; i++ {
		start := time.Now()
		if _, err := fmt.Fprintf(f, "line %d appended on the peer\n", i); err != nil {
			t.Fatal(err)
		}
		tail.WaitOutput(t, fmt.Sprintf("line %d appended", i), 15*time.Second)
		t.Logf("tail -f showed line %d %v after it was appended", i, time.Since(start).Round(10*time.Millisecond))
	}
	want := "line 1\nline 2 appended on the peer\nline 3 appended on the peer\nline 4 appended on the peer\n"
	testenv.WaitFor(t, 10*time.Second, "cat to see the grown file", func() bool {
		b, err := os.ReadFile(filepath.Join(mnt, "a", "app.log"))
		return err == nil && string(b) == want
	})
}
