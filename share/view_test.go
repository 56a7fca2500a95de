//go:build linux

package share

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
)

// secretsFixture serves policytest's home folder full of secrets.
type secretsFixture struct{ *policytest.Secrets }

func newSecretsFixture(t testing.TB) *secretsFixture {
	return &secretsFixture{policytest.NewSecrets(t)}
}

// start serves the fixture with the options dsftp mount would use.
func (f *secretsFixture) start(t testing.TB, mod func(*Options)) *testShare {
	return startTestShare(t, f.Share, f.options(mod))
}

// startPipe is start on a pipeListener, for a synctest bubble.
func (f *secretsFixture) startPipe(t testing.TB, mod func(*Options)) *testShare {
	return startPipeShare(t, f.Share, f.options(mod))
}

// options are the options dsftp mount would use, then mod.
func (f *secretsFixture) options(mod func(*Options)) func(*Options) {
	return func(o *Options) {
		o.SecretFiles = []string{f.Token}
		o.ExcludeMounts = func() []string { return []string{f.Mount} }
		if mod != nil {
			mod(o)
		}
	}
}

func isNotExist(err error) bool {
	var se *sftp.StatusError
	return errors.Is(err, os.ErrNotExist) || errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile
}

// TestWhatIsShared checks every operation on every kind of path through a
// real SSH connection: hidden and ignored paths, excluded mounts, keys,
// dsftp secrets and links into hidden places are all absent alike (not
// listed, "no such file" to every operation); plain files read.
func TestWhatIsShared(t *testing.T) {
	f := newSecretsFixture(t)
	before := treeHash(t, f.Share)
	ts := f.start(t, nil)
	c := ts.sftpClient(t)

	for _, p := range f.Served {
		b, err := readAllRemote(c, p)
		want, _ := readNoAtime(filepath.Join(f.Share, p))
		if err != nil || string(b) != string(want) {
			t.Errorf("read %s = %d bytes, %v; want its %d bytes", p, len(b), err, len(want))
		}
	}
	for _, p := range f.Absent {
		if _, err := c.Stat(p); !isNotExist(err) {
			t.Errorf("stat %s: %v; want not found", p, err)
		}
		if _, err := c.Lstat(p); !isNotExist(err) {
			t.Errorf("lstat %s: %v; want not found", p, err)
		}
		if _, err := c.Open(p); !isNotExist(err) {
			t.Errorf("open %s: %v; want not found", p, err)
		}
		if _, err := c.ReadDir(p); !isNotExist(err) {
			t.Errorf("readdir %s: %v; want not found", p, err)
		}
		if _, err := c.ReadLink(p); !isNotExist(err) {
			t.Errorf("readlink %s: %v; want not found", p, err)
		}
		if strings.Contains(p, "..") {
			continue // realpath cleans ".." away lexically, as sshd's chroot
		}
		if rp, err := c.RealPath(p); !isNotExist(err) {
			t.Errorf("realpath %s = %q, %v; want not found", p, rp, err)
		}
	}
	if target, err := c.ReadLink("/todo-link"); err != nil || target != "notes/todo.txt" {
		t.Errorf("readlink /todo-link = %q, %v", target, err)
	}

	got := walkRemote(t, c, "/")
	want := []string{"/certs", "/certs/server.crt", "/keep.log",
		"/notes", "/notes/ssh-howto.md", "/notes/todo.txt", "/photos", "/photos/cat.jpg",
		"/sub", "/sub/private", "/todo-link"}
	if !slices.Equal(got, want) {
		t.Errorf("walk of the share:\n got %q\nwant %q", got, want)
	}
	if after := treeHash(t, f.Share); after != before {
		t.Errorf("the shared tree changed:\n%s", lineDiff(before, after))
	}
	logs := ts.logs.String()
	for _, p := range []string{"/notes/backup.txt", "/token.txt", "/k", "/certs/bundle.pem"} {
		if n := strings.Count(logs, `msg="left a file out of the share" path=`+p+" "); n != 1 {
			t.Errorf("%s named %d times as left out; want once:\n%s", p, n, logs)
		}
	}
	if strings.Contains(logs, f.Share) {
		t.Errorf("the log names the share's host path; it must name client paths only")
	}
}

// walkRemote lists every path below dir through the client, sorted.
func walkRemote(t testing.TB, c *sftp.Client, dir string) []string {
	t.Helper()
	var out []string
	w := c.Walk(dir)
	for w.Step() {
		if w.Err() != nil {
			t.Errorf("walk %s: %v", w.Path(), w.Err())
			continue
		}
		if w.Path() != dir {
			out = append(out, w.Path())
		}
	}
	slices.Sort(out)
	return out
}

// TestShareHidden: --share-hidden serves dotfiles, but keys and dsftp's
// secret files stay absent.
func TestShareHidden(t *testing.T) {
	f := newSecretsFixture(t)
	ts := f.start(t, func(o *Options) {
		o.ShareHidden = true
		o.SecretFiles = append(o.SecretFiles, filepath.Join(f.Share, ".config/dsftp/discord-token"))
	})
	c := ts.sftpClient(t)
	if b, err := readAllRemote(c, "/.env"); err != nil || string(b) != "API_TOKEN=hunter2\n" {
		t.Errorf("read /.env with ShareHidden = %q, %v", b, err)
	}
	for _, p := range []string{"/.ssh/id_ed25519", "/k", "/.config/dsftp/discord-token"} {
		if b, err := readAllRemote(c, p); !isNotExist(err) {
			t.Errorf("read %s with ShareHidden = %q, %v; want not found", p, b, err)
		}
	}
	if names := listNames(t, c, "/.ssh"); !slices.Equal(names, []string{"id_ed25519.pub"}) {
		t.Errorf("/.ssh with ShareHidden lists %q; want only the public key", names)
	}
	if b, err := readAllRemote(c, "/.ssh/id_ed25519.pub"); err != nil || len(b) == 0 {
		t.Errorf("read a public key with ShareHidden: %v", err)
	}
}

// TestIgnoreReload: a change to .dsftpignore takes effect within seconds,
// both ways, without a restart.
func TestIgnoreReload(t *testing.T) {
	synctest.Test(t, testIgnoreReload)
}

// testIgnoreReload runs in a bubble: the rules' recheck interval passes
// on its clock.
func testIgnoreReload(t *testing.T) {
	f := newSecretsFixture(t)
	ts := f.startPipe(t, nil)
	c := ts.sftpClient(t)
	if ts.srv.IgnoreRules() != 4 {
		t.Errorf("IgnoreRules = %d; want 4", ts.srv.IgnoreRules())
	}
	ignore := filepath.Join(f.Share, IgnoreFile)
	orig, _ := os.ReadFile(ignore)
	if err := os.WriteFile(ignore, append(orig, "photos/\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "photos to disappear", func() bool { _, err := c.Stat("/photos/cat.jpg"); return isNotExist(err) })
	if names := listNames(t, c, "/"); slices.Contains(names, "photos") {
		t.Errorf("listing still shows photos: %q", names)
	}
	if err := os.Remove(ignore); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "build/ to come back", func() bool { _, err := c.Stat("/build/out.bin"); return err == nil })
	if _, err := readAllRemote(c, "/app.log"); err != nil {
		t.Errorf("app.log after removing the ignore file: %v", err)
	}
}

// TestExcludedMountAppears: a dsftp mount that appears inside the share
// after it started is hidden within seconds; other directories stay.
func TestExcludedMountAppears(t *testing.T) {
	synctest.Test(t, testExcludedMountAppears)
}

// testExcludedMountAppears runs in a bubble: the mount list's refresh
// interval passes on its clock.
func testExcludedMountAppears(t *testing.T) {
	f := newSecretsFixture(t)
	var mounts atomic.Pointer[[]string]
	mounts.Store(&[]string{})
	ts := startPipeShare(t, f.Share, func(o *Options) {
		o.ExcludeMounts = func() []string { return *mounts.Load() }
	})
	c := ts.sftpClient(t)
	if _, err := readAllRemote(c, "/peers/bob/x.txt"); err != nil {
		t.Fatalf("before the mount: %v", err)
	}
	mounts.Store(&[]string{f.Mount, "/somewhere/else"})
	waitFor(t, "peers to disappear", func() bool { _, err := c.Stat("/peers/bob/x.txt"); return isNotExist(err) })
	if names := listNames(t, c, "/"); slices.Contains(names, "peers") || !slices.Contains(names, "photos") {
		t.Errorf("listing after the mount appeared: %q", names)
	}
}

// TestShareInsideDsftpMount: sharing a folder inside a dsftp mount would
// pass the peers' shares on; it is refused with the reason.
func TestShareInsideDsftpMount(t *testing.T) {
	f := newSecretsFixture(t)
	_, err := New(Options{Dir: filepath.Join(f.Mount, "bob"), Listen: "127.0.0.1:0",
		ExcludeMounts: func() []string { return []string{f.Mount} }})
	if err == nil || !strings.Contains(err.Error(), "inside the dsftp mount") {
		t.Fatalf("New inside a dsftp mount: %v; want refused", err)
	}
}

// TestWhatIsSharedOpenSSH repeats the essentials with OpenSSH's sftp and
// with sshfs: hidden names are not listed, secrets do not download, find
// over sshfs sees only the shared files.
func TestWhatIsSharedOpenSSH(t *testing.T) {
	testenv.RequireFUSE(t)
	tools := testenv.Require(t, "sshfs", "find")
	f := newSecretsFixture(t)
	before := treeHash(t, f.Share)
	ts := f.start(t, nil)

	work := t.TempDir()
	out, err := ts.sftpBatch(t, work, "ls -la /\nls -la /notes\nget /notes/todo.txt\n-get /.ssh/id_ed25519\n-get /notes/backup.txt\n-get /k\n-get /token.txt\n-get /.env\n-get /build/out.bin\n-ls /peers\n")
	if err != nil {
		t.Fatalf("sftp -b: %v\n%s", err, out)
	}
	for _, bad := range []string{".ssh", ".env", ".dsftpignore", "build", "app.log", "peers"} {
		if strings.Contains(out, " "+bad+"\n") {
			t.Errorf("sftp ls shows %s:\n%s", bad, out)
		}
	}
	gotFiles, _ := filepath.Glob(filepath.Join(work, "*"))
	if len(gotFiles) != 1 || filepath.Base(gotFiles[0]) != "todo.txt" {
		t.Errorf("sftp downloaded %q; want only todo.txt\n%s", gotFiles, out)
	}

	mnt := ts.mountSSHFS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	found, err := exec.CommandContext(ctx, tools[1], mnt, "-type", "f").Output()
	if err != nil {
		t.Fatalf("find over sshfs: %v\n%s", err, found)
	}
	var files []string
	for _, l := range strings.Fields(string(found)) {
		files = append(files, strings.TrimPrefix(l, mnt))
	}
	slices.Sort(files)
	wantFiles := []string{"/certs/server.crt", "/keep.log", "/notes/ssh-howto.md",
		"/notes/todo.txt", "/photos/cat.jpg", "/sub/private"}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("find over sshfs:\n got %q\nwant %q", files, wantFiles)
	}
	for _, p := range f.Withheld {
		if b, err := os.ReadFile(filepath.Join(mnt, p)); err == nil {
			t.Errorf("cat %s over sshfs = %q; want an error", p, b)
		}
	}
	for _, p := range f.Served {
		if _, err := os.ReadFile(filepath.Join(mnt, p)); err != nil {
			t.Errorf("cat %s over sshfs: %v", p, err)
		}
	}
	if after := treeHash(t, f.Share); after != before {
		t.Errorf("the shared tree changed")
	}
}

func listNames(t testing.TB, c *sftp.Client, dir string) []string {
	t.Helper()
	fis, err := c.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var names []string
	for _, fi := range fis {
		names = append(names, fi.Name())
	}
	return names
}

// waitFor polls cond for up to 10 s (the rules are re-read every second).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, cond)
}

// TestDefaultPortTaken: with no Listen given, a taken 2200 moves the
// share to the next free port and says so; an explicit Listen does not.
func TestDefaultPortTaken(t *testing.T) {
	// Hold 2200 on all addresses, as a running dsftp would; if something
	// else holds it already, it is taken just the same.
	if l, err := net.Listen("tcp", DefaultListen); err == nil {
		defer l.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen with 2200 taken: %v", err)
	}
	if s.Port() == 2200 || s.Port() == 0 {
		t.Errorf("Port = %d; want another free port", s.Port())
	}
	if note := s.PortNote(); !strings.Contains(note, "2200 is taken") || !strings.Contains(note, strconv.Itoa(s.Port())) {
		t.Errorf("PortNote = %q", note)
	}
	s2, err := New(Options{Dir: dir, Listen: ":2200"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Listen(); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("explicit :2200 while taken: %v; want already in use", err)
	}
}

// lineDiff lists the lines that differ between two tree hashes.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
