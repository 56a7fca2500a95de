//go:build linux

package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// secretsView is a View of policytest's home folder full of secrets with
// the options dsftp mount would use.
func secretsView(t *testing.T, f *policytest.Secrets, mod func(*Options)) (*View, *testenv.SyncBuffer) {
	return testView(t, f.Share, func(o *Options) {
		o.SecretFiles = []string{f.Token}
		o.ExcludeMounts = func() []string { return []string{f.Mount} }
		if mod != nil {
			mod(o)
		}
	})
}

// TestWhatIsShared: hidden and ignored paths, excluded mounts, keys,
// dsftp secrets and links into hidden places are all absent alike (not
// listed, "no such file" to every operation); plain files read, and the
// sharing side names each withheld file once.
func TestWhatIsShared(t *testing.T) {
	f := policytest.NewSecrets(t)
	v, logs := secretsView(t, f, nil)
	for _, p := range f.Served {
		b, err := readFile(v, p)
		want, _ := os.ReadFile(filepath.Join(f.Share, p))
		if err != nil || string(b) != string(want) {
			t.Errorf("read %s = %d bytes, %v; want its %d bytes", p, len(b), err, len(want))
		}
	}
	for _, p := range f.Absent {
		checkAbsent(t, v, p)
	}
	e, err := v.Lookup("readlink", "/todo-link", false)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := v.Readlink(e); err != nil || target != "notes/todo.txt" {
		t.Errorf("readlink /todo-link = %q, %v", target, err)
	}
	want := []string{"/certs", "/certs/server.crt", "/keep.log",
		"/notes", "/notes/ssh-howto.md", "/notes/todo.txt", "/photos", "/photos/cat.jpg",
		"/sub", "/sub/private", "/todo-link"}
	for range 2 {
		if got := walk(t, v, "/"); !slices.Equal(got, want) {
			t.Errorf("walk of the share:\n got %q\nwant %q", got, want)
		}
	}
	for _, p := range []string{"/notes/backup.txt", "/token.txt", "/k", "/certs/bundle.pem"} {
		if n := strings.Count(logs.String(), `msg="left a file out of the share" path=`+p+" "); n != 1 {
			t.Errorf("%s named %d times as left out; want once:\n%s", p, n, logs.String())
		}
	}
	if strings.Contains(logs.String(), f.Share) {
		t.Errorf("the log names the share's host path; it must name client paths only")
	}
	if n := v.IgnoreRules(); n != 4 {
		t.Errorf("IgnoreRules = %d; want 4", n)
	}
	if real, _ := filepath.EvalSymlinks(f.Share); v.Dir() != real {
		t.Errorf("Dir = %q; want %q", v.Dir(), real)
	}
}

// TestListingLeavesOut: keys in PEM and DER, links that leave the share
// or lead to hidden or ignored paths or to a key are absent, exactly as a
// hidden path is, through a directory link too; a dangling link is shown
// as the link it is. Each is named once however often it is listed.
func TestListingLeavesOut(t *testing.T) {
	f := policytest.NewAbsent(t)
	v, logs := testView(t, f.Share, func(o *Options) { o.SecretDirs = []string{} })
	for range 3 {
		if got := walk(t, v, "/"); !slices.Equal(got, f.Listed) {
			t.Fatalf("walk of the share:\n got %q\nwant %q", got, f.Listed)
		}
	}
	for _, p := range append(f.Absent, "/.hidden/secret.txt", "/build/out.bin") {
		checkAbsent(t, v, p)
	}
	if got := names(t, v, "/docs-link"); !slices.Equal(got, names(t, v, "/docs")) || slices.Contains(got, "id_mykey") {
		t.Errorf("/docs-link lists %q; want what /docs lists, without the keys", got)
	}
	e, err := v.Lookup("readlink", "/dangling", false)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := v.Readlink(e); err != nil || target != "missing" {
		t.Errorf("readlink /dangling = %q, %v; want missing", target, err)
	}
	if b, err := readFile(v, "/docs-link/todo-link"); err != nil || string(b) != "TODO: ship it\n" {
		t.Errorf("read /docs-link/todo-link = %q, %v", b, err)
	}
	for _, p := range []string{"/docs/id_mykey", "/docs/key.der", "/out", "/docs/updir", "/to-hidden", "/to-key"} {
		if n := strings.Count(logs.String(), `msg="left a file out of the share" path=`+p+" "); n != 1 {
			t.Errorf("%s named %d times as left out; want once", p, n)
		}
	}
	for _, p := range []string{"/.hidden", "/build", "/docs/notes.txt", "/dangling"} {
		if strings.Contains(logs.String(), "path="+p+" ") {
			t.Errorf("%s is named in the log; only withheld files are", p)
		}
	}
}

// TestShareHidden: ShareHidden serves dotfiles, but keys and dsftp's
// secret files stay absent.
func TestShareHidden(t *testing.T) {
	f := policytest.NewSecrets(t)
	v, _ := secretsView(t, f, func(o *Options) {
		o.ShareHidden = true
		o.SecretFiles = append(o.SecretFiles, filepath.Join(f.Share, ".config/dsftp/discord-token"))
	})
	if b, err := readFile(v, "/.env"); err != nil || string(b) != "API_TOKEN=hunter2\n" {
		t.Errorf("read /.env with ShareHidden = %q, %v", b, err)
	}
	for _, p := range []string{"/.ssh/id_ed25519", "/k", "/.config/dsftp/discord-token"} {
		checkAbsent(t, v, p)
	}
	if got := names(t, v, "/.ssh"); !slices.Equal(got, []string{"id_ed25519.pub"}) {
		t.Errorf("/.ssh with ShareHidden lists %q; want only the public key", got)
	}
}

// TestIgnoreReload: a change to .dsftpignore takes effect within seconds,
// both ways; an ignore file that turns unreadable leaves the last rules
// in force.
func TestIgnoreReload(t *testing.T) {
	f := policytest.NewSecrets(t)
	v, logs := secretsView(t, f, nil)
	ignore := filepath.Join(f.Share, IgnoreFile)
	orig, err := os.ReadFile(ignore)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ignore, append(orig, "photos/\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "photos to disappear", func() bool {
		_, err := v.Lookup("stat", "/photos/cat.jpg", true)
		return errors.Is(err, fs.ErrNotExist)
	})
	if slices.Contains(names(t, v, "/"), "photos") || v.IgnoreRules() != 5 {
		t.Errorf("after adding photos/: listing %q, %d rules", names(t, v, "/"), v.IgnoreRules())
	}
	// A directory in its place cannot be read as rules: the last stay.
	if err := os.Remove(ignore); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(ignore, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the unreadable rules to be reported", func() bool {
		v.IgnoreRules() // the rules are looked at when they are used
		return strings.Contains(logs.String(), "keeping the previous ignore rules")
	})
	if _, err := v.Lookup("stat", "/photos/cat.jpg", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("photos after the ignore file turned unreadable: %v; want still ignored", err)
	}
	if err := os.Remove(ignore); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "build/ to come back", func() bool {
		_, err := v.Lookup("stat", "/build/out.bin", true)
		return err == nil
	})
	if _, err := readFile(v, "/app.log"); err != nil {
		t.Errorf("app.log after removing the ignore file: %v", err)
	}
}

// TestIgnoreFileRefused: a share whose .dsftpignore cannot be read, or is
// too big, does not start: it would serve what its owner excluded.
func TestIgnoreFileRefused(t *testing.T) {
	for name, create := range map[string]func(p string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink":   func(p string) error { return os.Symlink("elsewhere", p) },
		"too big":   func(p string) error { return os.WriteFile(p, make([]byte, maxIgnoreFile+1), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := create(filepath.Join(dir, IgnoreFile)); err != nil {
				t.Fatal(err)
			}
			if v, err := New(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), IgnoreFile) {
				if v != nil {
					v.Close()
				}
				t.Errorf("New with a %s as %s: %v; want an error naming it", name, IgnoreFile, err)
			}
		})
	}
}

// TestNewRefusesDir: a directory that cannot be shared is refused with
// what to do about it.
func TestNewRefusesDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		filepath.Join(dir, "missing"): "does not exist",
		file:                          "is not a directory",
	} {
		if v, err := New(Options{Dir: p}); err == nil || !strings.Contains(err.Error(), want) {
			if v != nil {
				v.Close()
			}
			t.Errorf("New(%s): %v; want %q", p, err, want)
		}
	}
}

// TestExcludedMountAppears: a dsftp mount that appears inside the share
// after it started is absent within seconds; other directories stay.
func TestExcludedMountAppears(t *testing.T) {
	f := policytest.NewSecrets(t)
	var mounts atomic.Pointer[[]string]
	mounts.Store(&[]string{})
	v, _ := testView(t, f.Share, func(o *Options) {
		o.ExcludeMounts = func() []string { return *mounts.Load() }
	})
	if _, err := readFile(v, "/peers/bob/x.txt"); err != nil {
		t.Fatalf("before the mount: %v", err)
	}
	mounts.Store(&[]string{f.Mount, "/somewhere/else"})
	testenv.WaitFor(t, 10*time.Second, "peers to disappear", func() bool {
		_, err := v.Lookup("stat", "/peers/bob/x.txt", true)
		return errors.Is(err, fs.ErrNotExist)
	})
	if got := names(t, v, "/"); slices.Contains(got, "peers") || !slices.Contains(got, "photos") {
		t.Errorf("listing after the mount appeared: %q", got)
	}
}

// TestShareInsideDsftpMount: sharing a folder inside a dsftp mount would
// pass the peers' shares on; it is refused with the reason.
func TestShareInsideDsftpMount(t *testing.T) {
	f := policytest.NewSecrets(t)
	v, err := New(Options{Dir: filepath.Join(f.Mount, "bob"), ExcludeMounts: func() []string { return []string{f.Mount} }})
	if err == nil || !strings.Contains(err.Error(), "inside the dsftp mount") {
		if v != nil {
			v.Close()
		}
		t.Fatalf("New inside a dsftp mount: %v; want refused", err)
	}
}

// TestLinkIntoExcludedMount: a symlink in the share that leads into an
// excluded mount is absent without the mount being touched at all (its
// server could be another dsftp, frozen). The mountpoint is removed here:
// a view that looked into it would fail with the disk's ENOENT, not
// with the view's errAbsent.
func TestLinkIntoExcludedMount(t *testing.T) {
	f := policytest.NewSecrets(t)
	if err := os.Symlink("peers/bob", filepath.Join(f.Share, "into-mount")); err != nil {
		t.Fatal(err)
	}
	v, _ := testView(t, f.Share, func(o *Options) { o.ExcludeMounts = func() []string { return []string{f.Mount} } })
	if err := os.RemoveAll(f.Mount); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"into-mount", "into-mount/x.txt"} {
		if _, err := v.find(p, true); !errors.Is(err, errAbsent) {
			t.Errorf("find %s: %v; want absent without looking into the mount", p, err)
		}
	}
	if why := v.linkWhy("into-mount"); why != whyLinkUnshared {
		t.Errorf("linkWhy(into-mount) = %q; want %q", why, whyLinkUnshared)
	}
}
