package sftpwire

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// testFile writes size random bytes to a file in a fresh directory.
func testFile(t testing.TB, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// Reads at several offsets and sizes against pkg/sftp's server, with
// pieces the server answers whole (32 KiB) and pieces it answers short
// (255 KiB: it caps a READ at 32 KiB, and the rest is asked for again).
func TestReadAt(t *testing.T) {
	const size = 1<<20 + 123
	p, data := testFile(t, size)
	c := startChan(t, pkgServer(t))
	h, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, piece := range []int{32 << 10, 255 << 10} {
		for _, tc := range []struct{ off, n int }{{0, 1}, {0, 4096}, {1000, 300 << 10}, {0, 1 << 20}, {size - 5000, 5000}} {
			b := make([]byte, tc.n)
			n, err := c.ReadAt(h, b, int64(tc.off), piece)
			if err != nil || n != tc.n {
				t.Fatalf("piece %d: ReadAt(%d, %d) = %d, %v; want %d, nil", piece, tc.off, tc.n, n, err, tc.n)
			}
			if !bytes.Equal(b, data[tc.off:tc.off+tc.n]) {
				t.Fatalf("piece %d: ReadAt(%d, %d): wrong data", piece, tc.off, tc.n)
			}
		}
	}
	if err := c.CloseHandle(h); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// A read across the end returns what is there with io.EOF; a read at or
// past the end returns 0 and io.EOF.
func TestReadAtEOF(t *testing.T) {
	const size = 100<<10 + 7
	p, data := testFile(t, size)
	c := startChan(t, pkgServer(t))
	h, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64<<10)
	n, err := c.ReadAt(h, b, size-1000, 32<<10)
	if n != 1000 || err != io.EOF {
		t.Fatalf("read across the end = %d, %v; want 1000, EOF", n, err)
	}
	if !bytes.Equal(b[:n], data[size-1000:]) {
		t.Fatal("read across the end: wrong data")
	}
	for _, off := range []int64{size, size + 1<<30} {
		if n, err := c.ReadAt(h, b, off, 32<<10); n != 0 || err != io.EOF {
			t.Fatalf("read at %d = %d, %v; want 0, EOF", off, n, err)
		}
	}
	if _, err := c.ReadAt(h, b, 0, 0); err == nil {
		t.Fatal("piece 0 accepted")
	}
}

// ReadAtThenClose reads a file whole and closes its handle; when the
// server answers short, the prefix comes back with ErrClosedShort.
func TestReadAtThenClose(t *testing.T) {
	const size = 100 << 10
	p, data := testFile(t, size)
	c := startChan(t, pkgServer(t))

	h, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if n, err := c.ReadAtThenClose(h, b, 0, 32<<10); n != size || err != nil || !bytes.Equal(b, data) {
		t.Fatalf("ReadAtThenClose = %d, %v (data equal: %v); want %d, nil", n, err, bytes.Equal(b, data), size)
	}
	// The CLOSE went out with the READs: the handle is gone.
	if err := c.CloseHandle(h); !errors.Is(err, ErrStatus) {
		t.Fatalf("second close = %v; want ErrStatus", err)
	}

	h, err = c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	n, err := c.ReadAtThenClose(h, b, 0, 64<<10) // pkg/sftp answers 32 KiB
	if n != 32<<10 || !errors.Is(err, ErrClosedShort) || !bytes.Equal(b[:n], data[:n]) {
		t.Fatalf("short ReadAtThenClose = %d, %v; want %d, ErrClosedShort", n, err, 32<<10)
	}
}

// Errors from a healthy server map to the os errors and ErrStatus, and
// leave the session working.
func TestErrorsMapped(t *testing.T) {
	dir := t.TempDir()
	c := startChan(t, pkgServer(t))
	if _, err := c.Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing file = %v; want ErrNotExist", err)
	}
	h, err := c.Open(dir) // a directory opens, but does not read
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(h, make([]byte, 10), 0, 32<<10); !errors.Is(err, ErrStatus) || errors.Is(err, ErrLost) {
		t.Fatalf("read of a directory = %v; want ErrStatus", err)
	}
	if err := c.CloseHandle("no such handle"); !errors.Is(err, ErrStatus) {
		t.Fatalf("close of an unknown handle = %v; want ErrStatus", err)
	}
	if _, _, err := c.ReadDir(context.Background(), filepath.Join(dir, "missing"), 0, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("listing of a missing directory = %v; want ErrNotExist", err)
	}
	p, _ := testFile(t, 10)
	if _, err := c.Open(p); err != nil {
		t.Fatalf("session unusable after errors: %v", err)
	}
}

// testDir makes a directory of n files, file i holding i bytes.
func testDir(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), make([]byte, i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A listing of 1000 entries comes in several NAME replies (pkg/sftp sends
// 128 a reply): all arrive, with their sizes; a limit stops it and says
// truncated; take sees every reply and can refuse; a cancelled context
// stops it.
func TestReadDir(t *testing.T) {
	const n = 1000
	dir := testDir(t, n)
	c := startChan(t, pkgServer(t))
	ctx := context.Background()

	var replies []int
	es, trunc, err := c.ReadDir(ctx, dir, 0, func(k int) bool { replies = append(replies, k); return true })
	if err != nil || trunc || len(es) != n {
		t.Fatalf("ReadDir = %d entries, %v, %v; want %d, false, nil", len(es), trunc, err, n)
	}
	if len(replies) < n/128 {
		t.Fatalf("take saw %d replies; want at least %d", len(replies), n/128)
	}
	for _, e := range es {
		var i int
		if _, err := fmt.Sscanf(e.Name, "f%05d", &i); err != nil || e.Attrs.Size != uint64(i) || e.Attrs.Mode&0o777 != 0o644 {
			t.Fatalf("entry %+v: wrong name or attributes", e)
		}
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name
	}
	slices.Sort(names)
	if names = slices.Compact(names); len(names) != n {
		t.Fatalf("%d distinct names; want %d", len(names), n)
	}

	es, trunc, err = c.ReadDir(ctx, dir, 300, nil)
	if err != nil || !trunc || len(es) != 300 {
		t.Fatalf("ReadDir limit 300 = %d entries, %v, %v; want 300, true, nil", len(es), trunc, err)
	}

	calls := 0
	_, _, err = c.ReadDir(ctx, dir, 0, func(int) bool { calls++; return calls < 2 })
	if !errors.Is(err, ErrRefused) || calls != 2 {
		t.Fatalf("refusing take: %v after %d calls; want ErrRefused after 2", err, calls)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.ReadDir(cctx, dir, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ReadDir = %v; want context.Canceled", err)
	}

	// Every handle was closed: the session still lists.
	if es, _, err := c.ReadDir(ctx, dir, 0, nil); err != nil || len(es) != n {
		t.Fatalf("ReadDir after the others = %d, %v", len(es), err)
	}
}

// The session's requests may come from many goroutines at once.
func TestConcurrentReads(t *testing.T) {
	const size = 4 << 20
	p, data := testFile(t, size)
	c := startChan(t, pkgServer(t))
	h, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			off := i * size / 8
			b := make([]byte, size/8)
			n, err := c.ReadAt(h, b, int64(off), 32<<10)
			if err == nil && (n != len(b) || !bytes.Equal(b, data[off:off+n])) {
				err = fmt.Errorf("reader %d: %d bytes, wrong data", i, n)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A server whose replies are wrong: the session refuses what it cannot
// frame (and fails every request with ErrLost), fails a request whose
// reply it can frame but not use, and never allocates what a length field
// claims beyond MaxPacket.
func TestGarbageServer(t *testing.T) {
	ok := versionPkt(3)
	handle := func(id uint32) []byte { return pkt(fxpHandle, id, str("h")) }
	type op func(c *Chan) error
	open := func(c *Chan) error { _, err := c.Open("/x"); return err }
	read := func(c *Chan) error {
		_, err := c.ReadAt("h", make([]byte, 100), 0, 100)
		return err
	}
	list := func(c *Chan) error { _, _, err := c.ReadDir(context.Background(), "/d", 0, nil); return err }
	for _, tc := range []struct {
		name   string
		answer func(typ byte, id uint32, body []byte) []byte
		op     op
		want   error  // errors.Is
		msg    string // in the error
		usable bool   // the session works afterwards
		hangUp bool   // the server closes after its answer
	}{
		{name: "huge packet length", answer: func(_ byte, id uint32, _ []byte) []byte {
			return append(u32(0xffffffff), fxpHandle, 0, 0, 0, byte(id))
		}, op: open, want: ErrLost, msg: "bad sftp packet length"},
		{name: "packet length too small", answer: func(_ byte, id uint32, _ []byte) []byte {
			return append(u32(4), fxpHandle, 0, 0, 0, byte(id))
		}, op: open, want: ErrLost, msg: "bad sftp packet length"},
		{name: "unknown request", answer: func(_ byte, id uint32, _ []byte) []byte { return handle(id + 100) },
			op: open, want: ErrLost, msg: "unknown request"},
		{name: "data longer than packet", answer: func(_ byte, id uint32, _ []byte) []byte {
			return pkt(fxpData, id, u32(1000), make([]byte, 10))
		}, op: read, want: ErrLost, msg: "bad sftp data length"},
		{name: "data without length", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpData, id, []byte{1, 2}) },
			op: read, want: ErrLost, msg: "short sftp data"},
		{name: "server hangs up mid-reply", answer: func(_ byte, id uint32, _ []byte) []byte {
			return pkt(fxpData, id, u32(100), make([]byte, 100))[:50]
		}, op: read, want: ErrLost, hangUp: true},
		{name: "handle too long", answer: func(_ byte, id uint32, _ []byte) []byte {
			return pkt(fxpHandle, id, str(strings.Repeat("h", maxHandle+1)))
		}, op: open, want: ErrLost, msg: "bad sftp handle"},
		{name: "empty handle", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpHandle, id, str("")) },
			op: open, want: ErrLost, msg: "bad sftp handle"},
		{name: "short status", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpStatus, id, []byte{0, 0}) },
			op: open, want: ErrLost, msg: "short sftp status"},
		{name: "handle for a read", answer: func(_ byte, id uint32, _ []byte) []byte { return handle(id) },
			op: read, msg: "unexpected packet type 102", usable: true},
		{name: "data for an open", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpData, id, u32(1), []byte{1}) },
			op: open, msg: "unexpected packet type 103", usable: true},
		{name: "OK for a read", answer: func(_ byte, id uint32, _ []byte) []byte { return statusPkt(id, fxOK, "") },
			op: read, msg: "OK status for a read", usable: true},
		{name: "OK for an open", answer: func(_ byte, id uint32, _ []byte) []byte { return statusPkt(id, fxOK, "") },
			op: open, msg: "OK status instead of a handle", usable: true},
		{name: "no such file", answer: func(_ byte, id uint32, _ []byte) []byte { return statusPkt(id, fxNoSuch, "gone") },
			op: open, want: os.ErrNotExist, usable: true},
		{name: "permission denied", answer: func(_ byte, id uint32, _ []byte) []byte { return statusPkt(id, fxPermDeny, "") },
			op: open, want: os.ErrPermission, usable: true},
		{name: "status without message", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpStatus, id, u32(8)) },
			op: open, want: ErrStatus, msg: "(status 8)", usable: true},
		{name: "long status message", answer: func(_ byte, id uint32, _ []byte) []byte {
			return statusPkt(id, 4, strings.Repeat("x", 10000)+"\n")
		}, op: open, want: ErrStatus, msg: `"` + strings.Repeat("x", maxMessage) + `"`, usable: true},
		{name: "names claim 2^31 entries", answer: func(typ byte, id uint32, _ []byte) []byte {
			if typ == fxpOpendir {
				return handle(id)
			}
			if typ == fxpReaddir {
				return pkt(fxpName, id, u32(1<<31), make([]byte, 100))
			}
			return statusPkt(id, fxOK, "")
		}, op: list, msg: "claims 2147483648 entries", usable: true},
		{name: "extended attributes claim 2^31 pairs", answer: func(typ byte, id uint32, _ []byte) []byte {
			if typ == fxpOpendir {
				return handle(id)
			}
			if typ == fxpReaddir {
				return pkt(fxpName, id, u32(1), str("a"), str(""), u32(attrExtended), u32(1<<31), make([]byte, 20))
			}
			return statusPkt(id, fxOK, "")
		}, op: list, msg: "claim 2147483648 extended pairs", usable: true},
		{name: "names for a read", answer: func(_ byte, id uint32, _ []byte) []byte { return pkt(fxpName, id, u32(0)) },
			op: read, msg: "unexpected packet type 104", usable: true},
		{name: "OK for a readdir", answer: func(typ byte, id uint32, _ []byte) []byte {
			if typ == fxpOpendir {
				return handle(id)
			}
			return statusPkt(id, fxOK, "")
		}, op: list, msg: "OK status instead of names", usable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// After the test's op: a healthy server.
			var healthy atomic.Bool
			conn := scripted(t, ok, tc.hangUp, func(typ byte, id uint32, body []byte) []byte {
				if !healthy.Load() {
					return tc.answer(typ, id, body)
				}
				if typ == fxpOpen {
					return handle(id)
				}
				return statusPkt(id, fxOK, "")
			})
			c := startChan(t, conn)
			err := tc.op(c)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %q; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q; want it to say %q", err, tc.msg)
			}
			healthy.Store(true)
			_, err = c.Open("/y")
			if tc.usable && err != nil {
				t.Fatalf("session unusable after the bad reply: %v", err)
			}
			if !tc.usable && !errors.Is(err, ErrLost) {
				t.Fatalf("session still used after an unframed reply: %v", err)
			}
		})
	}
}

// A VERSION reply that is not version 3, not well formed, or claims a
// huge length fails Start.
func TestGarbageVersion(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		version   []byte
	}{
		{"wrong type", "unexpected packet type 101", statusPkt(0, 0, "")},
		{"version 4", "version 4", versionPkt(4)},
		{"huge length", "bad packet length", append(u32(0xffffffff), fxpVersion)},
		{"bad extension", "bad sftp string length", append(versionPkt(3)[:0:0], append(u32(13), append([]byte{fxpVersion}, append(u32(3), append(u32(100), 1, 2, 3, 4)...)...)...)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := scripted(t, tc.version, false, func(byte, uint32, []byte) []byte { return nil })
			_, err := Start(conn, conn, conn.Close)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Start = %v; want an error saying %q", err, tc.msg)
			}
		})
	}
	conn := scripted(t, versionPkt(3, extension{"limits@openssh.com", "1"}), false, func(byte, uint32, []byte) []byte { return nil })
	if _, err := Start(conn, conn, conn.Close); err != nil {
		t.Fatalf("version 3 with an extension: %v", err)
	}
}

// Against OpenSSH's sftp-server, which answers READs of up to 255 KiB and
// lists "." and "..": reads, the end of the file, and a listing.
func TestOpenSSH(t *testing.T) {
	const size = 3<<20 + 17
	p, data := testFile(t, size)
	w, r := opensshServer(t)
	c, err := Start(w, r, w.Close)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size+100)
	n, err := c.ReadAt(h, b, 0, 255<<10)
	if n != size || err != io.EOF || !bytes.Equal(b[:n], data) {
		t.Fatalf("ReadAt = %d, %v (data equal: %v); want %d, EOF", n, err, bytes.Equal(b[:n], data), size)
	}
	if err := c.CloseHandle(h); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(p + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing file = %v; want ErrNotExist", err)
	}
	dir := testDir(t, 250) // OpenSSH sends 100 names a reply
	es, trunc, err := c.ReadDir(context.Background(), dir, 0, nil)
	if err != nil || trunc || len(es) != 250 {
		t.Fatalf("ReadDir = %d, %v, %v; want 250 entries", len(es), trunc, err)
	}
	for _, e := range es {
		if e.Name == "." || e.Name == ".." {
			t.Fatalf("listing holds %q", e.Name)
		}
	}
}
