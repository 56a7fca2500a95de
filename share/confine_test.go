//go:build linux

package share

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/share/policy/policytest"
	"github.com/pkg/sftp"
)

// hostileCases returns policytest's confinement attacks for fixture f.
func hostileCases(f *fixture) []policytest.HostileCase {
	return policytest.HostileCases(&policytest.Tree{Base: f.base, Share: f.share, Outside: f.outside, Secret: f.secret})
}

// TestConfinement drives each hostile path through the real server (SSH +
// SFTP, with the pkg/sftp client) with open+read, stat and readdir. Every
// one must fail and none may return anything from outside the share.
func TestConfinement(t *testing.T) {
	f := newFixture(t, true)
	ts := startTestShare(t, f.share, nil)
	c := ts.sftpClient(t)
	before := treeHash(t, f.share)

	cases := hostileCases(f)
	if len(cases) < 20 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	tried, refused := 0, 0
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			tried += 3
			data, err := readAllRemote(c, tc.Path)
			if err == nil {
				t.Errorf("open+read %q succeeded (%d bytes)", tc.Path, len(data))
			} else {
				refused++
			}
			if bytes.Contains(data, []byte("TOP-SECRET")) || bytes.Contains(data, []byte("root:")) {
				t.Errorf("open %q leaked outside data", tc.Path)
			}
			if fi, err := c.Stat(tc.Path); err == nil {
				t.Errorf("stat %q succeeded: %v %d", tc.Path, fi.Mode(), fi.Size())
			} else {
				refused++
			}
			entries, err := c.ReadDir(tc.Path)
			if err == nil {
				t.Errorf("readdir %q succeeded (%d entries)", tc.Path, len(entries))
			} else {
				refused++
			}
			for _, e := range entries {
				if e.Name() == secretName || e.Name() == "passwd" {
					t.Errorf("readdir %q listed outside: %s", tc.Path, e.Name())
				}
			}
		})
	}

	// readlink shows links that stay inside (or lead nowhere); links that
	// leave, directly or through another link, are not there.
	links := map[string]string{
		"link": "a.txt", "sub/uplink": "../a.txt", "dirlink": "sub", "abslink": "sub/b.txt", "loop1": "loop2",
		"chain1": "", "out": "", "absout": "", "outdir": "", "absoutdir": "", "chain2": "", "rootlink": "", "sub/passwd": "",
	}
	for p, want := range links {
		got, err := c.ReadLink(p)
		switch {
		case want == "" && err == nil:
			t.Errorf("readlink %q = %q; want not found (points outside)", p, got)
		case want == "":
			tried++
			refused++
			if !isNotExist(err) {
				t.Errorf("readlink %q: %v; want not found", p, err)
			}
			if _, err := c.Lstat(p); !isNotExist(err) {
				t.Errorf("lstat %q: %v; want not found", p, err)
			}
			if rp, err := c.RealPath(p); !isNotExist(err) {
				t.Errorf("realpath %q = %q, %v; want not found", p, rp, err)
			}
		case err != nil || got != want:
			t.Errorf("readlink %q = %q, %v; want %q", p, got, err, want)
		}
	}
	// A listing leaves the links out too.
	for _, dir := range []string{"/", "/sub"} {
		for _, name := range listNames(t, c, dir) {
			if want, ok := links[strings.TrimPrefix(path.Join(dir, name), "/")]; ok && want == "" {
				t.Errorf("readdir %s lists %s, a link leaving the share", dir, name)
			}
		}
	}
	// And the realpath of anything stays inside.
	for _, p := range []string{".", "..", "/..", "../../..", "sub/../..", "missing/file"} {
		got, err := c.RealPath(p)
		if err != nil || !strings.HasPrefix(got, "/") || strings.Contains(got, "..") {
			t.Errorf("realpath %q = %q, %v", p, got, err)
		}
	}
	if got, _ := c.RealPath("."); got != "/" {
		t.Errorf("realpath . = %q; want /", got)
	}
	if after := treeHash(t, f.share); after != before {
		t.Errorf("the shared tree changed")
	}
	t.Logf("hostile requests through the server: %d tried, %d refused (%d paths)", tried, refused, len(cases))
}

// isPermissionDenied reports an SSH_FX_PERMISSION_DENIED status (the
// pkg/sftp client turns it into fs.ErrPermission).
func isPermissionDenied(err error) bool {
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return se.FxCode() == sftp.ErrSSHFxPermissionDenied
	}
	return errors.Is(err, fs.ErrPermission)
}

// TestInsideStillWorks is the other half of confinement: paths that look
// odd but stay inside must work.
func TestInsideStillWorks(t *testing.T) {
	f := newFixture(t, true)
	ts := startTestShare(t, f.share, nil)
	c := ts.sftpClient(t)
	want := "hello from the share\n"
	for _, p := range []string{"a.txt", "/a.txt", "//a.txt", "./a.txt", "/../a.txt", "../../a.txt", "sub/../a.txt", "link", "sub/uplink", "dirlink/../a.txt", "/sub/./../link"} {
		got, err := readAllRemote(c, p)
		if err != nil || string(got) != want {
			t.Errorf("read %q = %q, %v; want %q", p, got, err, want)
		}
	}
	if entries, err := c.ReadDir("dirlink"); err != nil || len(entries) < 2 {
		t.Errorf("readdir dirlink = %d entries, %v", len(entries), err)
	}
	if fi, err := c.Stat("abslink"); err != nil || fi.Size() != int64(len("in a subdirectory\n")) {
		t.Errorf("stat abslink = %v, %v", fi, err)
	}
	// A FIFO inside the share is listed but not opened: opening it would
	// block the server until a writer appears.
	if _, err := readAllRemote(c, "fifo"); err == nil {
		t.Errorf("open fifo succeeded; want refused")
	}
	vfs, err := c.StatVFS("/")
	if err != nil {
		t.Fatalf("statvfs: %v", err)
	}
	if vfs.Blocks == 0 || vfs.Flag&1 == 0 {
		t.Errorf("statvfs = %+v; want blocks and the read-only flag", vfs)
	}
}
