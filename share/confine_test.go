//go:build linux

package share

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/pkg/sftp"
)

// hostileCase is one attempt to reach outside the share.
type hostileCase struct {
	name string
	path string
}

// hostileCases returns the table of confinement attacks for fixture f.
func hostileCases(f *fixture) []hostileCase {
	return []hostileCase{
		{"dotdot", "../outside/secret"},
		{"dotdot chain", strings.Repeat("../", 40) + "outside/secret"},
		{"root dotdot", "/../outside/secret"},
		{"root dotdot doubled", "/..//../outside/secret"},
		{"dot then dotdot", "./../outside/secret"},
		{"dotdot inside path", "sub/../../outside/secret"},
		{"dotdot through dir symlink", "dirlink/../../outside/secret"},
		{"double slash etc", "//etc/passwd"},
		{"absolute etc", "/etc/passwd"},
		{"absolute secret", f.secret},
		{"absolute secret doubled slash", "/" + f.secret},
		{"relative symlink out", "out"},
		{"absolute symlink out", "absout"},
		{"directory symlink out", "outdir/secret"},
		{"absolute directory symlink out", "absoutdir/secret"},
		{"symlink chain out (first hop)", "chain1"},
		{"symlink chain out (second hop)", "chain2"},
		{"symlink loop", "loop1"},
		{"symlink to /", "rootlink/etc/passwd"},
		{"deep relative symlink out", "sub/passwd"},
		{"NUL byte", "a.txt\x00/../../outside/secret"},
		{"NUL only", "\x00"},
		{"very long name", strings.Repeat("n", 300)},
		{"very long path", strings.Repeat("d/", 3000) + "secret"},
		{"backslashes", `..\outside\secret`},
		{"percent encoding", "%2e%2e/outside/secret"},
		{"trailing slash on symlink out", "outdir/"},
		{"directory symlink out listing", "outdir"},
		{"absolute directory symlink listing", "absoutdir"},
		{"root symlink listing", "rootlink"},
	}
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
		t.Run(tc.name, func(t *testing.T) {
			tried += 3
			data, err := readAllRemote(c, tc.path)
			if err == nil {
				t.Errorf("open+read %q succeeded (%d bytes)", tc.path, len(data))
			} else {
				refused++
			}
			if bytes.Contains(data, []byte("TOP-SECRET")) || bytes.Contains(data, []byte("root:")) {
				t.Errorf("open %q leaked outside data", tc.path)
			}
			if fi, err := c.Stat(tc.path); err == nil {
				t.Errorf("stat %q succeeded: %v %d", tc.path, fi.Mode(), fi.Size())
			} else {
				refused++
			}
			entries, err := c.ReadDir(tc.path)
			if err == nil {
				t.Errorf("readdir %q succeeded (%d entries)", tc.path, len(entries))
			} else {
				refused++
			}
			for _, e := range entries {
				if e.Name() == secretName || e.Name() == "passwd" {
					t.Errorf("readdir %q listed outside: %s", tc.path, e.Name())
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
