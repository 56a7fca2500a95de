//go:build linux

package share

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestSSHFS mounts the share with the real sshfs: diff -r against the
// source is empty, df answers (statvfs@openssh.com), and every write fails
// while the tree stays as it was.
func TestSSHFS(t *testing.T) {
	testenv.RequireFUSE(t)
	tools := testenv.Require(t, "sshfs", "diff", "df")
	f := newFixture(t, false)
	// sshfs (3.7.3 here) answers EPERM to readlink of a link whose target
	// climbs with "..", against OpenSSH's sshd just the same; leave that
	// link out so diff -r compares what sshfs can show.
	if err := os.Remove(filepath.Join(f.share, "sub", "uplink")); err != nil {
		t.Fatal(err)
	}
	ts := startTestShare(t, f.share, nil)
	mnt := ts.mountSSHFS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !testenv.Mounted(mnt) {
		t.Fatalf("%s is not mounted", mnt)
	}
	// Reading everything through the mount leaves the access times alone.
	beforeAtimes := atimes(t, f.share)
	read := 0
	err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		_, err = os.ReadFile(p)
		read++
		return err
	})
	if err != nil || read < 4 {
		t.Errorf("read all files through sshfs: %d files, %v", read, err)
	}
	if after := atimes(t, f.share); !equalMaps(beforeAtimes, after) {
		t.Errorf("reading through sshfs changed access times")
	}

	// diff reads the source too (changing its atimes), so hash after it.
	if out, err := exec.CommandContext(ctx, tools[1], "-r", f.share, mnt).CombinedOutput(); err != nil {
		t.Errorf("diff -r share mnt: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, tools[2], "-P", mnt).CombinedOutput()
	if err != nil {
		t.Errorf("df %s: %v\n%s", mnt, err, out)
	} else if !strings.Contains(string(out), mnt) {
		t.Errorf("df does not show the mount:\n%s", out)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "abslink")); err != nil || target != "sub/b.txt" {
		t.Errorf("readlink abslink through sshfs = %q, %v; want sub/b.txt (absolute in-share links shown relative)", target, err)
	}

	before := treeHash(t, f.share)
	writes := map[string]func() error{
		"create":   func() error { return os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("x"), 0o644) },
		"truncate": func() error { return os.Truncate(filepath.Join(mnt, "a.txt"), 0) },
		"append": func() error {
			fh, err := os.OpenFile(filepath.Join(mnt, "a.txt"), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = fh.WriteString("more")
				if cerr := fh.Close(); err == nil {
					err = cerr
				}
			}
			return err
		},
		"mkdir":   func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) },
		"rmdir":   func() error { return os.Remove(filepath.Join(mnt, "emptydir")) },
		"remove":  func() error { return os.Remove(filepath.Join(mnt, "a.txt")) },
		"rename":  func() error { return os.Rename(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "z.txt")) },
		"chmod":   func() error { return os.Chmod(filepath.Join(mnt, "a.txt"), 0o600) },
		"chtimes": func() error { return os.Chtimes(filepath.Join(mnt, "a.txt"), time.Now(), time.Now()) },
		"symlink": func() error { return os.Symlink("a.txt", filepath.Join(mnt, "s")) },
		"link":    func() error { return os.Link(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "h")) },
	}
	for name, op := range writes {
		if err := op(); err == nil {
			t.Errorf("%s through sshfs succeeded; want it refused", name)
		}
	}
	if after := treeHash(t, f.share); after != before {
		t.Errorf("the shared tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// mountSSHFS mounts the share with the real sshfs (256 KiB reads, this
// share's client key and pinned host key) and unmounts it at cleanup.
func (ts *testShare) mountSSHFS(t *testing.T) string {
	t.Helper()
	sshfs := testenv.Require(t, "sshfs")[0]
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.CleanupUnmount(t, mnt)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []string{"max_read=262144"}
	for i := 0; i+1 < len(ts.sshArgs()); i += 2 {
		opts = append(opts, ts.sshArgs()[i+1])
	}
	mount := exec.CommandContext(ctx, sshfs, "-p", strconv.Itoa(ts.port), "-o", strings.Join(opts, ","), "anyone@127.0.0.1:/", mnt)
	if out, err := mount.CombinedOutput(); err != nil {
		t.Fatalf("sshfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
			t.Logf("fusermount3 -u: %v %s", err, out)
		}
	})
	return mnt
}
