//go:build linux

package policy

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// testView opens a View of dir with the options mod sets, logging into
// the buffer it returns; it is closed when the test ends.
func testView(t testing.TB, dir string, mod func(*Options)) (*View, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	opts := Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&opts)
	}
	v, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v, logs
}

// readFile reads the client path p whole, as a client's open and reads
// would.
func readFile(v *View, p string) ([]byte, error) {
	e, err := v.Lookup("open", p, true)
	if err != nil {
		return nil, err
	}
	f, err := v.Open(e)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// readDir lists the client path p in batches of 7 (so that a batch ends
// inside the directory), as a client's opendir and readdirs would.
func readDir(v *View, p string) ([]fs.FileInfo, error) {
	e, err := v.Lookup("opendir", p, true)
	if err != nil {
		return nil, err
	}
	d, err := v.OpenDir(e)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var all []fs.FileInfo
	for {
		batch := make([]fs.FileInfo, 7)
		n, err := d.Next(batch)
		all = append(all, batch[:n]...)
		if errors.Is(err, io.EOF) {
			return all, nil
		}
		if err != nil {
			return all, err
		}
	}
}

// names lists the names in the client directory p.
func names(t testing.TB, v *View, p string) []string {
	t.Helper()
	fis, err := readDir(v, p)
	if err != nil {
		t.Fatalf("readdir %s: %v", p, err)
	}
	var out []string
	for _, fi := range fis {
		out = append(out, fi.Name())
	}
	return out
}

// walk lists every client path below dir, sorted, descending into
// directories (not into symlinks, as a client's walk).
func walk(t testing.TB, v *View, dir string) []string {
	t.Helper()
	var out []string
	fis, err := readDir(v, dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	for _, fi := range fis {
		p := path.Join(dir, fi.Name())
		out = append(out, p)
		if fi.IsDir() {
			out = append(out, walk(t, v, p)...)
		}
	}
	slices.Sort(out)
	return out
}

// checkAbsent asserts that every operation on the client path p says
// "no such file", as for a path that is not there.
func checkAbsent(t *testing.T, v *View, p string) {
	t.Helper()
	if _, err := v.Lookup("stat", p, true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s: %v; want not found", p, err)
	}
	e, err := v.Lookup("lstat", p, false)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lstat %s: %v; want not found", p, err)
	}
	if b, err := readFile(v, p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open %s = %d bytes, %v; want not found", p, len(b), err)
	}
	if _, err := readDir(v, p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readdir %s: %v; want not found", p, err)
	}
	if err == nil {
		if target, err := v.Readlink(e); err == nil {
			t.Errorf("readlink %s = %q; want not found", p, target)
		}
	}
	if strings.Contains(p, "..") {
		return // realpath cleans ".." away lexically, as sshd's chroot
	}
	if rp, err := v.RealPath(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("realpath %s = %q, %v; want not found", p, rp, err)
	}
}

// replaceFile puts a new file with content in the place of p (a new
// inode, as an editor's save does).
func replaceFile(t testing.TB, p, content string) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}
