//go:build !windows

package fs

import (
	"context"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file, directory or symlink inside a peer's share; rel is its
// path below the peer's root ("" for the peer's directory itself).
type node struct {
	fusefs.Inode
	readOnly
	fsys   *filesys
	peerID string
	rel    string

	mu sync.Mutex
	// The listing served at the last opendir, for FOPEN_KEEP_CACHE on
	// directories.
	lastListing *dirListing
	// namesCached: an open that let the kernel cache the listing served
	// some entries as names only (READDIR, not READDIRPLUS). The
	// kernel's copy then makes `ls -l` look up every such entry, one
	// request each, so the next opendir drops it.
	namesCached bool
	// Size and mtime at the last open, for FOPEN_KEEP_CACHE.
	openedSize  uint64
	openedMtime uint64
	openedNsec  uint32
	opened      bool

	budget, class uint8 // its state and class in fsys.inodes, under that budget's lock
}

var (
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeReaddirer      = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
	_ fusefs.NodeAccesser       = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeMkdirer        = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeUnlinker       = (*node)(nil)
	_ fusefs.NodeRmdirer        = (*node)(nil)
	_ fusefs.NodeRenamer        = (*node)(nil)
	_ fusefs.NodeSymlinker      = (*node)(nil)
	_ fusefs.NodeLinker         = (*node)(nil)
	_ fusefs.NodeMknoder        = (*node)(nil)
	_ fusefs.NodeOnForgetter    = (*node)(nil)
)

// OnForget: the kernel forgot the node; it leaves the inode budget.
func (n *node) OnForget() { n.fsys.inodes.forgot(n) }

// childInode is the inode of the child name (path rel) with attributes
// a: the one the kernel already has when it is the same file, else a
// new one, counted in the inode budget (lookedUp: for a LOOKUP, not
// READDIRPLUS).
func (n *node) childInode(ctx context.Context, name, rel string, a *fuse.Attr, lookedUp bool) *fusefs.Inode {
	st := fusefs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino}
	if c := n.GetChild(name); c != nil && c.StableAttr() == st {
		return c
	}
	child := &node{fsys: n.fsys, peerID: n.peerID, rel: rel}
	in := n.NewInode(ctx, child, st)
	class := describedFile
	switch {
	case st.Mode == syscall.S_IFDIR:
		class = directory
	case lookedUp:
		class = lookedUpFile
	}
	n.fsys.inodes.add(child, class)
	return in
}

// peer returns the current registry entry of the node's peer; a peer that
// left has no files any more.
func (n *node) peer() (peers.Peer, syscall.Errno) {
	e, ok := n.fsys.opts.Registry.ByID(n.peerID)
	if !ok {
		return peers.Peer{}, syscall.ENOENT
	}
	return e.Peer, 0
}

// peerRootAttr describes a peer's directory without asking the peer, so
// `ls -l` of the mount root never waits for the network.
func (n *node) peerRootAttr(out *fuse.Attr) {
	n.fsys.owner.dirAttr(out)
	t := uint64(n.fsys.start.Unix())
	if e, ok := n.fsys.opts.Registry.ByID(n.peerID); ok {
		t = uint64(e.Added.Unix())
	}
	out.Mtime, out.Ctime, out.Atime = t, t, t
	out.Blksize = 4096
	out.Ino = inoOf(n.peerID, "")
}

// attr returns the attributes of rel, from the cache or the peer.
func (n *node) attr(ctx context.Context, rel string, out *fuse.Attr) syscall.Errno {
	return n.attrFresh(ctx, rel, out, 0)
}

// attrFresh is attr with cached entries older than maxAge (when
// positive) fetched anew.
func (n *node) attrFresh(ctx context.Context, rel string, out *fuse.Attr, maxAge time.Duration) syscall.Errno {
	if e, ok := n.fsys.attrOf(n.peerID, rel); ok && (maxAge <= 0 || time.Since(e.at) < maxAge) {
		if e.errno != 0 {
			return e.errno
		}
		*out = e.attr
		return 0
	}
	p, errno := n.peer()
	if errno != 0 {
		return errno
	}
	fi, err := n.fsys.opts.Pool.Lstat(ctx, p, rel)
	if err != nil {
		errno := pool.Errno(err)
		if errno == syscall.ENOENT {
			n.fsys.cache.putAttr(n.peerID, rel, attrEntry{errno: syscall.ENOENT})
		} else {
			n.logErr("lstat", rel, err, errno)
		}
		return errno
	}
	toAttr(fi, n.fsys.owner, out)
	out.Ino = inoOf(n.peerID, rel)
	n.fsys.cache.putAttr(n.peerID, rel, attrEntry{attr: *out})
	return 0
}

func (n *node) logErr(op, rel string, err error, errno syscall.Errno) {
	n.fsys.logErr(op, rel, err, errno)
}

// Getattr answers from the cache, except for a file held open for
// followAfter: go-fuse passes one of its handles then (the kernel passes
// none, even for fstat), and a reader holding a file open at its end
// (tail -f) polls fstat to see it grow. Its attributes are then at most
// openAttrAge old, and the kernel keeps them for openAttrKernel only;
// files nobody holds open, or only briefly (cp, grep -r), keep AttrTTL
// and cost nothing more.
func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.rel == "" {
		n.peerRootAttr(&out.Attr)
		return 0
	}
	if h, ok := f.(heldHandle); !ok || !h.held().followed() {
		errno := n.attr(ctx, n.rel, &out.Attr)
		if h, ok := f.(*handle); ok && errno == 0 {
			h.r.Grow(int64(out.Attr.Size))
		}
		return errno
	}
	errno := n.attrFresh(ctx, n.rel, &out.Attr, openAttrAge)
	if errno != 0 {
		return errno
	}
	if n.fsys.cache != nil && openAttrKernel < n.fsys.opts.AttrTTL {
		out.SetTimeout(openAttrKernel)
	}
	if h, ok := f.(*handle); ok {
		// A size grown on the peer lets the handle read past the end it
		// had.
		h.r.Grow(int64(out.Attr.Size))
	}
	return 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	n.fsys.lookups.Add(1)
	rel := path.Join(n.rel, name)
	if e, hit := n.fsys.attrOf(n.peerID, rel); hit {
		// `ls -l` of a listed directory: one look at the caches per
		// file.
		if e.errno != 0 {
			return nil, e.errno
		}
		out.Attr = e.attr
		return n.childInode(ctx, name, rel, &out.Attr, true), 0
	}
	// A fresh listing of the parent that lacks the name answers a
	// lookup of a missing file without a round trip.
	// A cut listing proves nothing.
	if d, ok := n.fsys.cache.dir(n.peerID, n.rel); ok && d.complete() && !d.has(name) {
		return nil, syscall.ENOENT
	}
	n.fsys.lookupMissed(n.peerID, n.rel)
	n.fsys.speculateListing(n.peerID, rel)
	if errno := n.attr(ctx, rel, &out.Attr); errno != 0 {
		return nil, errno
	}
	return n.childInode(ctx, name, rel, &out.Attr, true), 0
}

// Readdir serves go-fuse's generic path (go-fuse uses OpendirHandle
// for the kernel): the whole listing at once.
func (n *node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	d, errno := n.listing(ctx)
	if errno != 0 {
		return nil, errno
	}
	if errno := d.waitDone(ctx); errno != 0 {
		return nil, errno
	}
	dots := n.dots()
	es := append(make([]fuse.DirEntry, 0, 2+d.len()), dots[:]...)
	for i := range d.len() {
		es = append(es, d.fuseEntry(i))
	}
	return fusefs.NewListDirStream(es), 0
}

// OpendirHandle lists the directory (from the cache when fresh) and lets
// the kernel cache the listing (FOPEN_CACHE_DIR, and go-fuse adds
// FOPEN_KEEP_CACHE), so a warm `ls -lR` or `find` costs no READDIR at all.
// When the listing was fetched anew, this open does not keep the kernel's
// older copy. A listing still arriving is served as it arrives.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	d, errno := n.listing(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	n.mu.Lock()
	drop := n.lastListing != nil && n.lastListing != d || n.namesCached
	n.lastListing = d
	n.namesCached = false
	n.mu.Unlock()
	n.fsys.prefetchSubdirs(n.peerID, n.rel, d, prefetchDepth)
	n.fsys.pf.listed(n.peerID, n.rel)
	h := &dirHandle{n: n, d: d, dots: n.dots(), last: -1, caching: !drop}
	if drop {
		// Without FOPEN_KEEP_CACHE the kernel drops its copy (an older
		// listing, or names without attributes) at this open and reads
		// this one from us; the next open may cache it again.
		return h, 0, 0
	}
	return h, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// listing returns the directory's entries, from the cache or the peer.
func (n *node) listing(ctx context.Context) (*dirListing, syscall.Errno) {
	return n.fsys.listDir(ctx, n.peerID, n.rel)
}

// READDIRPLUS describes an entry to the kernel whole (name, attributes
// and an inode, so `ls -l` asks nothing more), but every entry so
// described costs an inode here for as long as the kernel keeps it: the
// inode budget (CacheSize inodes, inodes.go) pushes the oldest out. The
// kernel asks for READDIRPLUS only where the entries are looked at
// (CAP_READDIRPLUS_AUTO): a bare listing gets names alone.

// dirHandle serves one opendir's listing: "." and "..", then the
// entries, waiting for those still arriving from the peer.
type dirHandle struct {
	n    *node
	d    *dirListing
	mu   sync.Mutex
	dots [2]fuse.DirEntry
	pos  int // offset of the next entry: 0 and 1 are . and ..
	last int // index in d of the entry served last, -1 for none
	// described: the entry served last went out with its attributes
	// (Lookup followed, READDIRPLUS).
	described bool
	// caching: opened with FOPEN_CACHE_DIR, so what it serves fills the
	// kernel's copy of the listing.
	caching bool
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileLookuper     = (*dirHandle)(nil)
)

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.caching && h.last >= 0 && !h.described {
		h.n.cacheNamesOnly()
	}
	h.last, h.described = -1, false
	var e fuse.DirEntry
	if h.pos < len(h.dots) {
		e = h.dots[h.pos]
	} else {
		i := h.pos - len(h.dots)
		n, _, errno := h.d.wait(ctx, i)
		if i >= n {
			return nil, errno // the end, or the listing failed
		}
		e = h.d.fuseEntry(i)
		h.last = i
	}
	h.pos++
	e.Off = uint64(h.pos)
	return &e, 0
}

// Seekdir: offsets are positions in the listing, "." and ".." first (0
// is the start).
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off > uint64(len(h.dots)) {
		i := int(min(off-uint64(len(h.dots)), 1<<31))
		n, done, errno := h.d.wait(ctx, i-1)
		if i > n {
			if !done {
				return errno
			}
			return syscall.EINVAL
		}
	}
	h.pos = int(off)
	h.last = -1
	return 0
}

// Lookup answers READDIRPLUS for the entry just served, from the listing
// (go-fuse asks right after Readdirent). When the inode budget is full
// it declines: the kernel then takes the name alone.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	h.mu.Lock()
	i := h.last
	h.mu.Unlock()
	if i < 0 || !h.n.fsys.inodes.room() {
		return nil, syscall.ENOENT
	}
	e := h.d.at(i)
	if e.name != name {
		return nil, syscall.ENOENT
	}
	n := h.n
	rel := childRel(n.rel, name)
	e.attr(n.fsys.owner, inoOf(n.peerID, rel), &out.Attr)
	ino := n.childInode(ctx, name, rel, &out.Attr, false)
	h.mu.Lock()
	if h.last == i {
		h.described = true
	}
	h.mu.Unlock()
	return ino, 0
}

// cacheNamesOnly notes that the kernel's copy of the listing holds
// entries without attributes.
func (n *node) cacheNamesOnly() {
	n.mu.Lock()
	n.namesCached = true
	n.mu.Unlock()
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	p, errno := n.peer()
	if errno != 0 {
		return nil, errno
	}
	target, err := n.fsys.opts.Pool.ReadLink(ctx, p, n.rel)
	if err != nil {
		errno := pool.Errno(err)
		n.logErr("readlink", n.rel, err, errno)
		return nil, errno
	}
	return []byte(target), 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	var a fuse.Attr
	if errno := n.attr(ctx, n.rel, &a); errno != 0 {
		return nil, 0, errno
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil, 0, syscall.EISDIR
	}
	p, errno := n.peer()
	if errno != 0 {
		return nil, 0, errno
	}
	expected := n.fsys.pf.opened(p, n.peerID, n.rel)
	e, errno := n.fsys.pf.content(ctx, n.peerID, n.rel, &a, expected)
	if errno != 0 {
		return nil, 0, errno
	}
	if e != nil {
		return newMemHandle(n, p, e, int64(a.Size)), n.keepCache(&a), 0
	}
	r, err := n.fsys.opts.Pool.OpenFile(ctx, p, n.rel, int64(a.Size), 0)
	if err != nil {
		errno := pool.Errno(err)
		n.logErr("open", n.rel, err, errno)
		return nil, 0, errno
	}
	return &handle{r: r, n: n, hold: n.holdOpen()}, n.keepCache(&a), 0
}

// keepCache keeps the kernel's page cache when the file looks unchanged
// since the last open, so a re-read runs at memory speed.
func (n *node) keepCache(a *fuse.Attr) uint32 {
	n.mu.Lock()
	keep := n.opened && n.openedSize == a.Size && n.openedMtime == a.Mtime && n.openedNsec == a.Mtimensec
	n.opened, n.openedSize, n.openedMtime, n.openedNsec = true, a.Size, a.Mtime, a.Mtimensec
	n.mu.Unlock()
	if keep {
		return fuse.FOPEN_KEEP_CACHE
	}
	return 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.NameLen = 255
	out.Bsize, out.Frsize = 4096, 4096
	p, errno := n.peer()
	if errno != 0 {
		return errno
	}
	st, err := n.fsys.opts.Pool.StatVFS(ctx, p, n.rel)
	if err != nil {
		errno := pool.Errno(err)
		if errno == syscall.ENOTSUP {
			return 0 // an empty file system rather than a failing df
		}
		n.logErr("statvfs", n.rel, err, errno)
		return errno
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	if st.Namemax > 0 {
		out.NameLen = uint32(st.Namemax)
	}
	return 0
}

// Access: with default_permissions the kernel checks modes itself.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }

// Getxattr answers at once: remote files have no extended attributes here.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, errNoXattr
}

// handle is an open file: a read-ahead reader on one pooled connection.
type handle struct {
	r    RemoteFile
	n    *node
	hold *holder
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off+int64(len(dest)) > h.r.Size() {
		// The kernel reads past the end the handle knows when a fresh
		// stat told it the file grew: take the size from that stat.
		if e, ok := h.n.fsys.attrOf(h.n.peerID, h.n.rel); ok && e.errno == 0 {
			h.r.Grow(int64(e.attr.Size))
		}
	}
	data, release, err := h.r.ReadAtNoCopy(ctx, dest, off)
	if err != nil {
		// Never a short read for a failure: the kernel would take it for
		// the end of the file.
		release()
		errno := pool.Errno(err)
		h.n.logErr("read", h.n.rel, err, errno)
		return nil, errno
	}
	return &readResult{data: data, release: release}, 0
}

// readResult hands read-ahead buffers to go-fuse without copying; Done
// (after the reply went to the kernel) gives them back.
type readResult struct {
	data    [][]byte
	release func()
	once    sync.Once
}

// Bytes is go-fuse's fallback; Slices is what it uses.
func (r *readResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(r.data) == 1 {
		return r.data[0], fuse.OK
	}
	buf = buf[:0]
	for _, d := range r.data {
		buf = append(buf, d...)
	}
	return buf, fuse.OK
}

func (r *readResult) Size() int {
	n := 0
	for _, d := range r.data {
		n += len(d)
	}
	return n
}

func (r *readResult) Done() { r.once.Do(r.release) }

// Slices makes go-fuse write the reply with one writev straight from the
// buffers. Without it go-fuse first tries splice(2), which for data in
// memory costs a pipe, a header write into it and then a fallback, per
// read.
func (r *readResult) Slices() ([][]byte, fuse.Status) { return r.data, fuse.OK }

// Release closes the remote handle in the background: the kernel does not
// wait for it, and the pool bounds it with its deadline.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.hold.release()
	go h.r.Close()
	return 0
}
