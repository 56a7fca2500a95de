//go:build linux

package fs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// testFS is the file system over a fakeRemote without a kernel mount:
// go-fuse's node tree is built (NewNodeFS) and the tests call the nodes'
// methods as go-fuse's dispatch would for the kernel's requests.
type testFS struct {
	t    *testing.T
	fake *fakeRemote
	reg  *peers.Registry
	root *rootNode
	ctx  context.Context
}

// peerID is the ID the tests give the peer named name.
func peerID(name string) string { return "id-" + name }

// testLogger logs to the test's log, so a failure shows the file
// system's view; background work logging after the test is dropped
// (t.Log would panic then).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.over = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	over bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.over {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// addPeers lists the named peers in reg.
func addPeers(reg *peers.Registry, names ...string) {
	for _, n := range names {
		reg.Upsert(peers.Peer{ID: peerID(n), Name: n, Source: peers.SourceFlag})
	}
}

// newTestFS builds the file system over fake with opts (Registry, Pool
// and Logger filled in) and the named peers live.
func newTestFS(t *testing.T, fake *fakeRemote, opts Options, names ...string) *testFS {
	t.Helper()
	reg := peers.NewRegistry("")
	addPeers(reg, names...)
	opts.Registry, opts.Pool = reg, fake
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	root := newRoot(ctx, opts)
	fusefs.NewNodeFS(root, &fusefs.Options{}) // links the tree; calls OnAdd
	done := make(chan struct{})
	go func() {
		defer close(done)
		root.follow(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &testFS{t: t, fake: fake, reg: reg, root: root, ctx: ctx}
}

// lookup walks rel ("peer/dir/file") from the root as the kernel's
// LOOKUPs do.
func (x *testFS) lookup(rel string) (*node, syscall.Errno) {
	x.t.Helper()
	parts := strings.Split(rel, "/")
	var out fuse.EntryOut
	in, errno := x.root.Lookup(x.ctx, parts[0], &out)
	if errno != 0 {
		return nil, errno
	}
	n := in.Operations().(*node)
	for _, name := range parts[1:] {
		out = fuse.EntryOut{}
		in, errno = n.Lookup(x.ctx, name, &out)
		if errno != 0 {
			return nil, errno
		}
		n = in.Operations().(*node)
	}
	return n, 0
}

// mustLookup is lookup that fails the test on an error.
func (x *testFS) mustLookup(rel string) *node {
	x.t.Helper()
	n, errno := x.lookup(rel)
	if errno != 0 {
		x.t.Fatalf("lookup %s: %v", rel, errno)
	}
	return n
}

// rootNames lists the mount root.
func (x *testFS) rootNames() []string {
	x.t.Helper()
	ds, errno := x.root.Readdir(x.ctx)
	if errno != 0 {
		x.t.Fatalf("readdir /: %v", errno)
	}
	defer ds.Close()
	var names []string
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			x.t.Fatalf("readdir /: %v", errno)
		}
		names = append(names, e.Name)
	}
	return x.withoutDots("/", names)
}

// withoutDots checks that a listing starts with . and .. (as ls -a
// shows them) and returns the rest.
func (x *testFS) withoutDots(dir string, names []string) []string {
	x.t.Helper()
	if len(names) < 2 || names[0] != "." || names[1] != ".." {
		x.t.Errorf("listing of %s does not start with . and ..: %v", dir, names)
		return names
	}
	return names[2:]
}

// list opens and reads the directory rel as `ls` does (OPENDIR, then
// READDIR until the end).
func (x *testFS) list(rel string) ([]fuse.DirEntry, syscall.Errno) {
	x.t.Helper()
	n, errno := x.lookup(rel)
	if errno != 0 {
		return nil, errno
	}
	return x.listNode(n)
}

func (x *testFS) listNode(n *node) ([]fuse.DirEntry, syscall.Errno) {
	fh, _, errno := n.OpendirHandle(x.ctx, 0)
	if errno != 0 {
		return nil, errno
	}
	h := fh.(*dirHandle)
	var es []fuse.DirEntry
	for {
		e, errno := h.Readdirent(x.ctx)
		if errno != 0 {
			return nil, errno
		}
		if e == nil {
			if len(es) < 2 || es[0].Name != "." || es[1].Name != ".." {
				x.t.Errorf("listing does not start with . and ..: %v", entryNames(es))
				return es, 0
			}
			return es[2:], 0
		}
		es = append(es, *e)
	}
}

// entryNames are the names of es.
func entryNames(es []fuse.DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

// readChunk is the size of the kernel's reads in these tests.
const readChunk = 128 << 10

// read opens rel and reads it whole, chunk by chunk as the kernel does.
func (x *testFS) read(rel string) ([]byte, syscall.Errno) {
	x.t.Helper()
	n, errno := x.lookup(rel)
	if errno != 0 {
		return nil, errno
	}
	fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
	if errno != 0 {
		return nil, errno
	}
	defer fh.(fusefs.FileReleaser).Release(x.ctx)
	return readAll(x.ctx, fh, 0)
}

// readAll reads an open file from off to its end.
func readAll(ctx context.Context, fh fusefs.FileHandle, off int64) ([]byte, syscall.Errno) {
	var out []byte
	buf := make([]byte, readChunk)
	for {
		b, errno := readAt(ctx, fh, buf, off)
		if errno != 0 {
			return out, errno
		}
		out = append(out, b...)
		off += int64(len(b))
		if len(b) < len(buf) {
			return out, 0
		}
	}
}

// readAt is one READ request: the reply's bytes, copied out, and the
// result handed back as go-fuse does after replying.
func readAt(ctx context.Context, fh fusefs.FileHandle, buf []byte, off int64) ([]byte, syscall.Errno) {
	res, errno := fh.(fusefs.FileReader).Read(ctx, buf, off)
	if errno != 0 {
		return nil, errno
	}
	defer res.Done()
	b, st := res.Bytes(make([]byte, len(buf)))
	if !st.Ok() {
		return nil, syscall.Errno(st)
	}
	return append([]byte(nil), b...), 0
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, d, what, cond)
}
