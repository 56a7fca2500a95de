//go:build linux

package share

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// TestErrorsNameNoHostPath: no error reply carries a path of the sharing
// machine, not even the OS error of a read at an absurd offset.
func TestErrorsNameNoHostPath(t *testing.T) {
	f := newFixture(t, true)
	ts := startTestShare(t, f.share, nil)
	c := ts.sftpClient(t)
	fh, err := c.Open("/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var errs []error
	_, err = fh.ReadAt(make([]byte, 16), math.MaxInt64)
	errs = append(errs, err)
	for _, p := range []string{"/nope", "/sub/nope/deeper", "/out", "/absout", "/loop1", "/fifo", "/a.txt/x", "/chain1"} {
		_, err := c.Open(p)
		errs = append(errs, err)
		_, err = c.Stat(p)
		errs = append(errs, err)
		_, err = c.ReadDir(p)
		errs = append(errs, err)
		_, err = c.ReadLink(p)
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil && (strings.Contains(err.Error(), f.base) || strings.Contains(err.Error(), f.share)) {
			t.Errorf("error reply names a host path: %v", err)
		}
	}
	t.Logf("read at MaxInt64: %v", errs[0])
}

// TestFIFONotOpened: a FIFO in the share is refused by its type; the
// server never opens it, so a writer blocked on it stays blocked.
func TestFIFONotOpened(t *testing.T) {
	f := newFixture(t, true) // has /fifo
	ts := startTestShare(t, f.share, nil)
	c := ts.sftpClient(t)
	// A writer opening the FIFO blocks until some reader opens it.
	opened := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(filepath.Join(f.share, "fifo"), os.O_WRONLY, 0)
		if err == nil {
			w.Close()
		}
		opened <- err
	}()
	if _, err := c.Open("/fifo"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("open /fifo: %v; want not a regular file", err)
	}
	if _, err := c.ReadDir("/fifo"); err == nil {
		t.Errorf("opendir /fifo succeeded")
	}
	select {
	case err := <-opened:
		t.Fatalf("the FIFO writer was released (%v): the server opened the FIFO", err)
	case <-time.After(300 * time.Millisecond):
	}
	// Release the writer ourselves (O_RDWR never blocks) so the test ends.
	r, err := os.OpenFile(filepath.Join(f.share, "fifo"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-opened
	r.Close()
}

// TestReaddirStreams: a directory handle reads the directory in batches
// as the client asks, so 100 open handles on a 20,000-entry directory
// cost little server memory, and a full listing is still complete and
// without duplicates.
func TestReaddirStreams(t *testing.T) {
	dir := t.TempDir()
	const n = 20000
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startTestShare(t, dir, nil)
	c := ts.sftpClient(t)
	fis, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, fi := range fis {
		if seen[fi.Name()] || strings.HasPrefix(fi.Name(), ".") {
			t.Fatalf("listing has %q twice or hidden", fi.Name())
		}
		seen[fi.Name()] = true
	}
	if len(seen) != n {
		t.Fatalf("listing has %d entries; want %d", len(seen), n)
	}

	// Open 100 handles on the directory, through the same handlers the
	// server runs (pkg/sftp's client cannot hold a directory handle open),
	// and read one batch from each: the heap grows by far less than 100
	// whole listings would cost (about 20,000 × 200 B = 4 MB each).
	h := newFSHandlers(ts.srv.view, new(atomic.Int64), 0, ts.srv.log, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var listers []sftp.ListerAt
	for range 100 {
		l, err := h.list("/")
		if err != nil {
			t.Fatal(err)
		}
		out := make([]os.FileInfo, sftp.MaxFilelist)
		if k, err := l.ListAt(out, 0); k != len(out) || err != nil {
			t.Fatalf("first batch: %d entries, %v", k, err)
		}
		listers = append(listers, l)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("100 open directory handles on %d entries: heap grew %.2f MiB", n, float64(grown)/(1<<20))
	if grown > 20<<20 {
		t.Errorf("heap grew %d bytes for 100 directory handles; want a bounded batch per handle", grown)
	}
	for _, l := range listers {
		l.(io.Closer).Close()
	}
}
