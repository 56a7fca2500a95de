//go:build linux

package share

import (
	"slices"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/pkg/sftp"
)

// TestListingLeavesOut: what the share withholds is absent, exactly as a
// hidden path is: not listed, and stat, lstat, open, opendir, readlink
// and realpath all say "no such file". The sharing side names each left
// out file once, however often it is listed.
func TestListingLeavesOut(t *testing.T) {
	f := policytest.NewAbsent(t)
	ts := startTestShare(t, f.Share, func(o *Options) { o.SecretDirs = []string{} })
	c := ts.sftpClient(t)

	for range 3 {
		if got := walkRemote(t, c, "/"); !slices.Equal(got, f.Listed) {
			t.Fatalf("walk of the share:\n got %q\nwant %q", got, f.Listed)
		}
	}
	for _, p := range append(f.Absent, "/.hidden/secret.txt", "/build/out.bin") {
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
