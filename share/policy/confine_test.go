//go:build linux

package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/share/policy/policytest"
)

// TestConfinement drives each hostile path through the view with open,
// stat, lstat and readdir: every one must fail, and none may return
// anything from outside the share.
func TestConfinement(t *testing.T) {
	f := policytest.NewTree(t, true)
	v, _ := testView(t, f.Share, nil)
	cases := policytest.HostileCases(f)
	if len(cases) < 20 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			data, err := readFile(v, tc.Path)
			if err == nil {
				t.Errorf("open+read %q succeeded (%d bytes)", tc.Path, len(data))
			}
			if bytes.Contains(data, []byte("TOP-SECRET")) || bytes.Contains(data, []byte("root:")) {
				t.Errorf("open %q leaked outside data", tc.Path)
			}
			if e, err := v.Lookup("stat", tc.Path, true); err == nil {
				t.Errorf("stat %q succeeded: %v %d", tc.Path, e.Info().Mode(), e.Info().Size())
			}
			fis, err := readDir(v, tc.Path)
			if err == nil {
				t.Errorf("readdir %q succeeded (%d entries)", tc.Path, len(fis))
			}
			for _, fi := range fis {
				if fi.Name() == policytest.SecretName || fi.Name() == "passwd" {
					t.Errorf("readdir %q listed outside: %s", tc.Path, fi.Name())
				}
			}
			if err != nil && strings.Contains(err.Error(), f.Base) && !strings.Contains(tc.Path, f.Base) {
				t.Errorf("readdir %q: %v names a host path", tc.Path, err)
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
		if want == "" {
			checkAbsent(t, v, p)
			continue
		}
		e, err := v.Lookup("readlink", p, false)
		if err != nil {
			t.Errorf("lstat %q: %v", p, err)
			continue
		}
		if got, err := v.Readlink(e); err != nil || got != want {
			t.Errorf("readlink %q = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, dir := range []string{"/", "/sub"} {
		for _, name := range names(t, v, dir) {
			if want, ok := links[strings.TrimPrefix(path.Join(dir, name), "/")]; ok && want == "" {
				t.Errorf("readdir %s lists %s, a link leaving the share", dir, name)
			}
		}
	}
	for _, p := range []string{".", "..", "/..", "../../..", "sub/../..", "missing/file"} {
		got, err := v.RealPath(p)
		if err != nil || !strings.HasPrefix(got, "/") || strings.Contains(got, "..") {
			t.Errorf("realpath %q = %q, %v", p, got, err)
		}
	}
	if got, _ := v.RealPath("."); got != "/" {
		t.Errorf("realpath . = %q; want /", got)
	}
}

// TestInsideStillWorks is the other half of confinement: paths that look
// odd but stay inside work; a FIFO is listed but never opened.
func TestInsideStillWorks(t *testing.T) {
	f := policytest.NewTree(t, true)
	v, _ := testView(t, f.Share, nil)
	want := "hello from the share\n"
	for _, p := range []string{"a.txt", "/a.txt", "//a.txt", "./a.txt", "/../a.txt", "../../a.txt", "sub/../a.txt", "link", "sub/uplink", "dirlink/../a.txt", "/sub/./../link"} {
		if got, err := readFile(v, p); err != nil || string(got) != want {
			t.Errorf("read %q = %q, %v; want %q", p, got, err, want)
		}
	}
	if fis, err := readDir(v, "dirlink"); err != nil || len(fis) < 2 {
		t.Errorf("readdir dirlink = %d entries, %v", len(fis), err)
	}
	e, err := v.Lookup("stat", "abslink", true)
	if err != nil || e.Info().Size() != int64(len("in a subdirectory\n")) || e.Path() != "/abslink" {
		t.Errorf("stat abslink = %v, %v", e, err)
	}
	if _, err := readFile(v, "fifo"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("open fifo: %v; want %v", err, ErrNotRegular)
	}
	if _, err := readFile(v, "sub"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("open a directory: %v; want %v", err, ErrNotRegular)
	}
	e, err = v.Lookup("stat", "a.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.OpenDir(e); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("opendir a.txt: %v; want not a directory", err)
	}
	if _, err := v.Readlink(e); err == nil {
		t.Errorf("readlink of a file succeeded")
	}
	pf, err := v.OpenPath(e)
	if err != nil {
		t.Fatalf("OpenPath: %v", err)
	}
	pf.Close()
	if names := names(t, v, "/"); !strings.Contains(strings.Join(names, " "), "fifo") {
		t.Errorf("/ lists %q; want the fifo listed", names)
	}
	var pe *fs.PathError
	if _, err := v.Lookup("stat", "/nope/deeper", true); !errors.As(err, &pe) || pe.Path != "/nope/deeper" {
		t.Errorf("stat /nope/deeper: %v; want an error naming the client path", err)
	}
}

// TestSwappedFile: a file replaced between look-up and open is not
// served; the client is told to try again.
func TestSwappedFile(t *testing.T) {
	f := policytest.NewTree(t, false)
	v, _ := testView(t, f.Share, nil)
	e, err := v.Lookup("open", "a.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path.Join(f.Share, "a.txt"), "swapped in\n")
	if file, err := v.Open(e); err == nil || !strings.Contains(err.Error(), "changed while being opened") {
		if file != nil {
			file.Close()
		}
		t.Errorf("open after a swap: %v; want changed while being opened", err)
	}
}
