//go:build !windows

package fs

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// memHandle is an open file served from the prefetch's content cache:
// the whole file, or its start with a Reader (opened in the background at
// open) for the rest. A file that grew since (tail -f) is read on through
// a Reader as well.
type memHandle struct {
	n    *node
	p    peers.Peer
	e    *contentEntry // unref'd at Release
	data []byte        // e.data
	size int64         // at open
	hold *holder

	// consumed: a read reached the end of data, so the kernel got all
	// of it.
	consumed atomic.Bool

	once  sync.Once
	ready chan struct{} // closed once r or err is set
	r     RemoteFile
	err   error
}

var (
	_ fusefs.FileReader   = (*memHandle)(nil)
	_ fusefs.FileReleaser = (*memHandle)(nil)
)

func newMemHandle(n *node, p peers.Peer, e *contentEntry, size int64) *memHandle {
	h := &memHandle{n: n, p: p, e: e, data: e.data, size: size, ready: make(chan struct{}), hold: n.holdOpen()}
	if int64(len(h.data)) < size {
		h.startReader() // the rest will be wanted: open it meanwhile
	}
	return h
}

// startReader opens the remote file (once), asking first for the bytes
// after the cached ones.
func (h *memHandle) startReader() {
	h.once.Do(func() {
		go func() {
			defer close(h.ready)
			h.r, h.err = h.n.fsys.opts.Pool.OpenFile(h.n.fsys.ctx, h.p, h.n.rel, h.size, int64(len(h.data)))
		}()
	})
}

func (h *memHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	cached := int64(len(h.data))
	end := off + int64(len(dest))
	if end <= cached || (cached == h.size && !h.grew(end)) {
		if end >= cached {
			h.consumed.Store(true)
		}
		if off >= cached {
			return fuse.ReadResultData(nil), 0
		}
		// Copied into the request's own buffer, not handed out as a
		// slice of h.data: go-fuse writes the reply after Read returns,
		// and nothing orders that write before the Release that recycles
		// h.data.
		return fuse.ReadResultData(dest[:copy(dest, h.data[off:min(end, cached)])]), 0
	}
	h.startReader()
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, syscall.EINTR
	}
	if h.err != nil {
		errno := pool.Errno(h.err)
		h.n.logErr("open", h.n.rel, h.err, errno)
		return nil, errno
	}
	if e, ok := h.n.fsys.attrOf(h.n.peerID, h.n.rel); ok && e.errno == 0 {
		h.r.Grow(int64(e.attr.Size))
	}
	k := 0
	if off < cached {
		k = copy(dest, h.data[off:])
	}
	n, err := h.r.ReadAtContext(ctx, dest[k:], off+int64(k))
	if err != nil && err != io.EOF {
		// Never a short read for a failure: the kernel would take it for
		// the end of the file.
		errno := pool.Errno(err)
		h.n.logErr("read", h.n.rel, err, errno)
		return nil, errno
	}
	return fuse.ReadResultData(dest[:k+n]), 0
}

// grew: a fresh stat shows the file longer than it was at open, and the
// read goes past the old end.
func (h *memHandle) grew(end int64) bool {
	if end <= h.size {
		return false
	}
	e, ok := h.n.fsys.attrOf(h.n.peerID, h.n.rel)
	return ok && e.errno == 0 && int64(e.attr.Size) > h.size
}

// Release closes the Reader, if one was opened, in the background, and
// hands the cached data back: the kernel releases a file only after every
// read on it was answered, so nothing reads h.data any more.
func (h *memHandle) Release(ctx context.Context) syscall.Errno {
	h.hold.release()
	h.n.fsys.pf.unref(h.e, h.consumed.Load())
	h.once.Do(func() { close(h.ready) }) // none started: none will be
	go func() {
		<-h.ready
		if h.r != nil {
			h.r.Close()
		}
	}()
	return 0
}
