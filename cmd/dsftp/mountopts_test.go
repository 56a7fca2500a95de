//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/fs/mountinfo"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// nobody is the unprivileged user the tests act as.
const nobody = 65534

// modePeer is a `dsftp share` of a folder holding a 0644 file, a 0755
// script, a setuid file and a 0750 directory, on loopback.
type modePeer struct {
	dir  string
	peer []string // the mount flags that reach it
	bin  string   // the binary, where nobody can run it
}

func startModePeer(t *testing.T) *modePeer {
	t.Helper()
	testenv.RequireFUSE(t)
	tmp := t.TempDir()
	// Readable by nobody: the tests run dsftp and cp as that user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "shared")
	for path, mode := range map[string]os.FileMode{"a.txt": 0o644, "run.sh": 0o755, "suid": 0o4755, "sub/b.txt": 0o600} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(path+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	key := testenv.NewKey(t, tmp, "client")
	if err := os.Chmod(key.Path, 0o644); err != nil { // nobody's mounts use it too (a test key)
		t.Fatal(err)
	}
	port := strconv.Itoa(testenv.FreePort(t))
	_, fp := startShareBinary(t, dir, "--listen", "127.0.0.1:"+port, "--authorized-keys", key.Path+".pub", "--discovery", "off").ShareReady(t)
	bin := filepath.Join(tmp, "dsftp")
	copyFile(t, testenv.Binary(t), bin, 0o755)
	return &modePeer{dir: dir, bin: bin, peer: []string{"--no-share", "--discovery", "off", "--identity", key.Path,
		"--peer", "p=sftp://x@127.0.0.1:" + port + "/?fingerprint=" + fp}}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// mountDir makes an empty mountpoint that nobody may enter.
func mountDir(t *testing.T) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is 0700; nobody must get through both.
	_ = os.Chmod(filepath.Dir(mnt), 0o755)
	_ = os.Chmod(filepath.Dir(filepath.Dir(mnt)), 0o755)
	testenv.CleanupUnmount(t, mnt)
	return mnt
}

// mount runs `dsftp mount mnt` with the peer and args and waits until
// the peer's directory shows.
func (m *modePeer) mount(t *testing.T, mnt string, args ...string) *testenv.Node {
	t.Helper()
	p := testenv.StartNode(t, testenv.NodeOptions{Binary: m.bin}, append(append([]string{"mount", mnt}, m.peer...), args...)...)
	testenv.WaitFor(t, 30*time.Second, "the peer's directory in the mount", func() bool {
		_, err := os.Stat(filepath.Join(mnt, "p", "a.txt"))
		return err == nil
	})
	return p
}

// stop sends sig and waits for a clean exit with nothing left mounted.
func stop(t *testing.T, p *testenv.Node, mnt string, sig syscall.Signal) {
	t.Helper()
	if err := p.Stop(t, sig, 20*time.Second); err != nil {
		t.Errorf("dsftp mount on %v: %v; want exit 0", sig, err)
	}
	if testenv.Mounted(mnt) {
		t.Errorf("%s still mounted after %v", mnt, sig)
	}
}

// asNobody runs a shell command as the unprivileged user.
func asNobody(name string, args ...string) (string, error) {
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--", name}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/nonexistent"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func modeOf(t *testing.T, p string) (os.FileMode, uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid
}

// TestMountModesAndCopy: modes are the peer's minus setuid; every file is
// owned by --uid/-o uid=; a normal user copies with cp and cp -a, then
// edits and removes the copy without a single "Permission denied".
// (Before: r--r--r-- copies and 50 lines of errors from rm -rf.)
func TestMountModesAndCopy(t *testing.T) {
	testenv.Require(t, "setpriv", "cp")
	m := startModePeer(t)
	mnt := mountDir(t)
	p := m.mount(t, mnt, "-o", "allow_other,uid="+strconv.Itoa(nobody), "--gid", strconv.Itoa(nobody))
	for rel, want := range map[string]os.FileMode{"p": os.ModeDir | 0o755, "p/a.txt": 0o644, "p/run.sh": 0o755,
		"p/suid": 0o755, "p/sub": os.ModeDir | 0o750, "p/sub/b.txt": 0o600} {
		mode, uid, gid := modeOf(t, filepath.Join(mnt, rel))
		if mode != want || uid != nobody || gid != nobody {
			t.Errorf("%s: %v %d:%d; want %v %d:%d", rel, mode, uid, gid, want, nobody, nobody)
		}
	}
	work := t.TempDir()
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`set -e; cd %s; cp %s/p/a.txt copy.txt; ls -l copy.txt; cp -a %s/p tree; ls -lR tree; echo more >> tree/a.txt; echo more >> tree/sub/b.txt; rm -rf tree; echo removed`, work, mnt, mnt)
	out, err := asNobody("sh", "-c", script)
	t.Logf("as uid %d:\n%s", nobody, out)
	if err != nil || strings.Contains(out, "denied") || !strings.HasSuffix(out, "removed\n") {
		t.Errorf("cp, cp -a, edit, rm -rf as a normal user: %v\n%s", err, out)
	}
	if !strings.Contains(out, "-rw-r--r-- 1 65534 65534 7") && !strings.Contains(out, "-rw-r--r-- 1 nobody") {
		t.Errorf("the copy of a 0644 file is not 0644 owned by the user:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(mnt, "p", "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing into the mount: %v; want EROFS", err)
	}
	stop(t, p, mnt, syscall.SIGTERM)

	// --umask and -o umask= mask the modes.
	p = m.mount(t, mnt, "--umask", "027")
	if mode, uid, _ := modeOf(t, filepath.Join(mnt, "p", "a.txt")); mode != 0o640 || uid != uint32(os.Getuid()) {
		t.Errorf("--umask 027: a.txt is %v uid %d; want -rw-r----- uid %d", mode, uid, os.Getuid())
	}
	stop(t, p, mnt, syscall.SIGHUP)
	p = m.mount(t, mnt, "-o", "umask=077")
	if mode, _, _ := modeOf(t, filepath.Join(mnt, "p", "run.sh")); mode != 0o700 {
		t.Errorf("-o umask=077: run.sh is %v; want -rwx------", mode)
	}
	stop(t, p, mnt, syscall.SIGINT)
}

// mountLine returns the /proc/self/mountinfo line of mnt.
func mountLine(t *testing.T, mnt string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && mountinfo.Unescape(f[4]) == mnt {
			return l
		}
	}
	return ""
}

// TestMountOptions: each -o option takes effect on a real mount, and an
// unknown one is refused, naming it.
func TestMountOptions(t *testing.T) {
	testenv.Require(t, "setpriv")
	m := startModePeer(t)
	mnt := mountDir(t)

	p := m.mount(t, mnt, "-o", "ro,nosuid,nodev,default_permissions,fsname=friends,subtype=peers")
	line := mountLine(t, mnt)
	for _, want := range []string{" ro,nosuid,nodev", " - fuse.peers friends ", "default_permissions"} {
		if !strings.Contains(line, want) {
			t.Errorf("-o fsname=friends,subtype=peers: mountinfo line lacks %q:\n%s", want, line)
		}
	}
	if out, err := asNobody("ls", mnt+"/p"); err == nil {
		t.Errorf("without allow_other, another user listed the mount:\n%s", out)
	}
	stop(t, p, mnt, syscall.SIGTERM)

	// allow_other lets another user in; allow_root only root (and the
	// mounting user, root here).
	p = m.mount(t, mnt, "-o", "allow_other")
	if out, err := asNobody("cat", mnt+"/p/a.txt"); err != nil || out != "a.txt\n" {
		t.Errorf("-o allow_other: another user reads %q, %v; want a.txt", out, err)
	}
	stop(t, p, mnt, syscall.SIGTERM)
	p = m.mount(t, mnt, "-o", "allow_root")
	if out, err := asNobody("ls", mnt+"/p"); err == nil || !strings.Contains(out, "ermission denied") {
		t.Errorf("-o allow_root: another user lists the mount: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "p", "a.txt")); err != nil || string(b) != "a.txt\n" {
		t.Errorf("-o allow_root: root reads %q, %v", b, err)
	}
	stop(t, p, mnt, syscall.SIGTERM)

	// auto_unmount: even kill -9 leaves no mount behind.
	p = m.mount(t, mnt, "-o", "auto_unmount")
	_ = p.Cmd.Process.Kill()
	testenv.WaitFor(t, 10*time.Second, "fusermount3 to unmount after kill -9", func() bool { return !testenv.Mounted(mnt) })

	for _, bad := range []struct{ flag, val, want string }{
		{"-o", "allow_other,nosuch", `unknown mount option "nosuch"`}, {"-o", "uid=alice", `"alice" is not a numeric`},
		{"-o", "umask=999", `umask "999"`}, {"--umask", "8", "--umask"}, {"-o", "ro=1", "ro takes no value"},
		{"-o", "fsname", "fsname needs a value"},
	} {
		n := runDsftp(t, testenv.NodeOptions{Env: noToken}, append(append([]string{"mount", mnt}, m.peer...), bad.flag, bad.val)...)
		out, code := n.Text(), n.ExitCode()
		if code != exitUsage || !strings.Contains(out, bad.want) {
			t.Errorf("dsftp mount %s %s: exit %d, %q; want exit 2 and %q", bad.flag, bad.val, code, out, bad.want)
		}
		if testenv.Mounted(mnt) {
			t.Fatalf("dsftp mount %s %s mounted", bad.flag, bad.val)
		}
	}
}

// TestMountNonEmpty: a mountpoint that holds files is refused (exit 2,
// naming a file and --allow-non-empty) and nothing is started;
// --allow-non-empty mounts over it.
func TestMountNonEmpty(t *testing.T) {
	m := startModePeer(t)
	mnt := mountDir(t)
	if err := os.WriteFile(filepath.Join(mnt, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n := runDsftp(t, testenv.NodeOptions{Env: noToken}, append([]string{"mount", mnt}, m.peer...)...)
	out, code := n.Text(), n.ExitCode()
	if code != exitUsage || !strings.Contains(out, "is not empty") || !strings.Contains(out, "notes.txt") || !strings.Contains(out, "--allow-non-empty") {
		t.Errorf("non-empty mountpoint: exit %d, %q; want exit 2 naming notes.txt and --allow-non-empty", code, out)
	}
	p := m.mount(t, mnt, "--allow-non-empty")
	stop(t, p, mnt, syscall.SIGTERM)
	if _, err := os.Stat(filepath.Join(mnt, "notes.txt")); err != nil {
		t.Errorf("the file under the mount is gone after unmounting: %v", err)
	}
}
