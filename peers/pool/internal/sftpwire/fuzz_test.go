package sftpwire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

// The fuzz targets cover every function that parses bytes from the peer.
// Each must not panic, must reject or round-trip, and must not allocate
// beyond what the input holds (MaxPacket at most). Their seeds are real
// replies, recorded from pkg/sftp's server and, where it is installed,
// OpenSSH's sftp-server.

// recorder keeps a copy of what the client reads.
type recorder struct {
	r  io.Reader
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.b.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

// captureKinds is the reply each request of capture wants, by id (from 1).
var captureKinds = []byte{fxpHandle, fxpData, fxpData, fxpStatus, fxpHandle, fxpName, fxpName, fxpName, fxpName, fxpName, fxpStatus, fxpHandle}

// capture runs a fixed session (captureKinds) on a server and returns
// what the server sent: the VERSION reply, then one reply per request.
func capture(tb testing.TB, w io.Writer, r io.Reader, closeFn func() error) (version []byte, replies [][]byte) {
	tb.Helper()
	dir := tb.TempDir()
	file := filepath.Join(dir, "file")
	// 100 bytes, read whole by one READ of 100.
	if err := os.WriteFile(file, bytes.Repeat([]byte("hello, world\n"), 8)[:100], 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		tb.Fatal(err)
	}
	rec := &recorder{r: r}
	c, err := Start(w, rec, closeFn)
	if err != nil {
		tb.Fatalf("capture: %v", err)
	}
	defer c.Close()
	h, err := c.Open(file) // 1
	if err != nil {
		tb.Fatalf("capture: %v", err)
	}
	b := make([]byte, 100)
	c.ReadAt(h, b, 0, 100)     // 2: DATA
	c.ReadAt(h, b, 1<<40, 100) // 3: EOF
	c.CloseHandle(h)           // 4
	// 5 OPENDIR, 6-10 READDIR (NAME, then EOF; four in flight, one
	// more sent after the NAME), 11 CLOSE
	if _, _, err := c.ReadDir(context.Background(), dir, 0, nil); err != nil {
		tb.Fatalf("capture: %v", err)
	}
	c.Open(filepath.Join(dir, "missing")) // 12: no such file
	rec.mu.Lock()
	stream := bytes.Clone(rec.b.Bytes())
	rec.mu.Unlock()
	l := 4 + int(binary.BigEndian.Uint32(stream))
	version, stream = stream[:l], stream[l:]
	for len(stream) >= 4 {
		l := 4 + int(binary.BigEndian.Uint32(stream))
		replies = append(replies, stream[:l])
		stream = stream[l:]
	}
	if len(replies) != len(captureKinds) {
		tb.Fatalf("capture: %d replies; want %d", len(replies), len(captureKinds))
	}
	return version, replies
}

// realPackets records capture's session from pkg/sftp's server and from
// OpenSSH's sftp-server when it is installed (and -short does not rule
// out starting programs): seeds only, so without it the targets still
// run on pkg/sftp's packets.
func realPackets(tb testing.TB) (versions [][]byte, replies [][][]byte) {
	conn := pkgServer(tb)
	v, r := capture(tb, conn, conn, conn.Close)
	versions, replies = append(versions, v), append(replies, r)
	const openssh = "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(openssh); err == nil && !testing.Short() {
		cmd := exec.Command(openssh)
		w, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		v, r := capture(tb, w, out, w.Close)
		w.Close()
		cmd.Wait()
		versions, replies = append(versions, v), append(replies, r)
	}
	return versions, replies
}

// seedBodies adds the bodies (after the 9-byte header) of the real
// replies of type typ.
func seedBodies(f *testing.F, typ byte) {
	_, sessions := realPackets(f)
	for _, rs := range sessions {
		for _, r := range rs {
			if r[4] == typ {
				f.Add(r[9:])
			}
		}
	}
}

func FuzzHeader(f *testing.F) {
	_, sessions := realPackets(f)
	for _, rs := range sessions {
		for _, r := range rs {
			f.Add(r)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readHeader(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		if h.length < 5 || h.length > MaxPacket || h.bodyLen() < 0 {
			t.Fatalf("accepted length %d", h.length)
		}
		if got := appendHeader(nil, h); !bytes.Equal(got, data[:9]) {
			t.Fatalf("header %x round-trips to %x", data[:9], got)
		}
	})
}

func FuzzVersion(f *testing.F) {
	versions, _ := realPackets(f)
	for _, v := range versions {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		exts, err := readVersion(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		// Accepted means well formed: it is exactly what we would send.
		got := versionPkt(version, exts...)
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("version %x round-trips to %x", data, got)
		}
	})
}

func FuzzStatus(f *testing.F) {
	seedBodies(f, fxpStatus)
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := parseStatus(body)
		if err != nil {
			return
		}
		if len(s.msg) > maxMessage {
			t.Fatalf("message of %d bytes kept", len(s.msg))
		}
		if back, err := parseStatus(marshalStatus(s)); err != nil || back != s {
			t.Fatalf("status %+v round-trips to %+v, %v", s, back, err)
		}
		_ = s.err() // must not panic
	})
}

func FuzzHandle(f *testing.F) {
	seedBodies(f, fxpHandle)
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := parseHandle(body)
		if err != nil {
			return
		}
		if len(h) == 0 || len(h) > maxHandle {
			t.Fatalf("handle of %d bytes accepted", len(h))
		}
		if back, err := parseHandle(sftpString(h)); err != nil || back != h {
			t.Fatalf("handle %q round-trips to %q, %v", h, back, err)
		}
	})
}

func FuzzData(f *testing.F) {
	_, sessions := realPackets(f)
	for _, rs := range sessions {
		for _, r := range rs {
			if r[4] == fxpData {
				f.Add(r[9:], uint32(100))
				f.Add(r[9:], uint32(3))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, bufLen uint32) {
		buf := make([]byte, bufLen%(64<<10))
		r := bufio.NewReader(bytes.NewReader(body))
		k, err := readData(r, len(body), buf)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(body))
		if k != min(n, len(buf)) || !bytes.Equal(buf[:k], body[4:4+k]) {
			t.Fatalf("data of %d bytes, buffer %d: got %d bytes %x", n, len(buf), k, buf[:k])
		}
		if r.Buffered() != 0 {
			t.Fatalf("%d bytes of the reply left unread", r.Buffered())
		}
	})
}

func FuzzNames(f *testing.F) {
	seedBodies(f, fxpName)
	// Extended attributes, which neither server sends.
	f.Add(append(append(u32(1), append(str("a"), str("")...)...), append(u32(attrExtended|attrSize), append(make([]byte, 8), append(u32(1), append(str("k"), str("v")...)...)...)...)...))
	f.Fuzz(func(t *testing.T, body []byte) {
		es, err := parseNames(body, nil)
		if err != nil {
			return
		}
		// What is allocated is bounded by what the packet holds.
		if cap(es) > len(body)/minEntry {
			t.Fatalf("%d entries allocated for %d bytes", cap(es), len(body))
		}
		back, err := parseNames(marshalNames(es), nil)
		if err != nil || len(back) != len(es) || (len(es) > 0 && !reflect.DeepEqual(back, es)) {
			t.Fatalf("names %+v round-trip to %+v, %v", es, back, err)
		}
	})
}

// FuzzReplies runs the read loop on a stream of replies to the requests of
// capture: whatever the stream, the loop ends (at its end at the latest),
// answers every request, and puts no more data in a buffer than it holds.
func FuzzReplies(f *testing.F) {
	_, sessions := realPackets(f)
	for _, rs := range sessions {
		f.Add(bytes.Join(rs, nil))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := &Chan{r: bufio.NewReader(bytes.NewReader(stream)), close: func() error { return nil }, pending: map[uint32]*request{}}
		reqs := make([]*request, len(captureKinds))
		for i, want := range captureKinds {
			reqs[i] = &request{want: want, done: make(chan struct{})}
			if want == fxpData {
				reqs[i].buf = make([]byte, 100)
			}
			c.pending[uint32(i+1)] = reqs[i]
		}
		c.readLoop()
		for i, r := range reqs {
			select {
			case <-r.done:
			default:
				t.Fatalf("request %d left waiting", i+1)
			}
			if r.n > len(r.buf) {
				t.Fatalf("request %d: %d bytes into a buffer of %d", i+1, r.n, len(r.buf))
			}
		}
		if c.err == nil {
			t.Fatal("loop ended without an error")
		}
	})
}
