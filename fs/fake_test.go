//go:build linux

package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/pkg/sftp"
)

// fakeRemote is an in-memory Remote: peers holding trees of directories,
// files and symlinks, with faults to order (an error per operation and
// path, a frozen peer, a dead one) and a count of every call. It keeps
// the pool's contract: every call ends within the deadline (timeout) even
// when ctx has none, and its errors map with pool.Errno as the pool's do.
type fakeRemote struct {
	// timeout is the pool's deadline (a time.Duration): a frozen peer's
	// calls fail with pool.ErrTimeout after it.
	timeout atomic.Int64
	// timeoutSet is closed (and replaced) when timeout changes, so that
	// held calls take the new deadline, counted from their start.
	timeoutSet atomic.Pointer[chan struct{}]

	mu     sync.Mutex
	peers  map[string]*fakePeer // by peer ID
	calls  map[string]int       // by callKey(op, peer ID, rel)
	forgot []string
	closed bool

	// lstatRTT is how long each LSTAT takes, as over a link: what
	// makes a round trip worth saving.
	lstatRTT atomic.Int64 // a time.Duration

	waiting atomic.Int64  // calls held by a frozen peer right now
	sent    atomic.Int64  // file content bytes sent by Fetch and reads
	listed  atomic.Int64  // listing entries handed over
	done    chan struct{} // closed at the test's end: held calls give up
}

// fakePeer is one peer's share.
type fakePeer struct {
	nodes map[string]*fakeNode // by rel; "" is the share's root
	// extra are raw listing entries added to a directory's listing (names
	// no tree can hold: "", "a/b", repeats).
	extra map[string][]pool.DirEntry
	// holds stop listings midway, by directory.
	holds map[string]*listingHold
	// faults fail an operation on a path: by callKey(op, "", rel), or
	// callKey("", "", rel) for every operation on it.
	faults map[string]error
	frozen chan struct{} // non-nil while frozen; closed by thaw
	dead   bool          // unreachable: every call fails at once
}

type fakeNode struct {
	mode   os.FileMode
	data   []byte
	target string // symlink
	mtime  time.Time
}

// newFakeRemote returns an empty fake whose held calls end with the test.
func newFakeRemote(t testing.TB) *fakeRemote {
	f := &fakeRemote{peers: map[string]*fakePeer{}, calls: map[string]int{}, done: make(chan struct{})}
	set := make(chan struct{})
	f.timeoutSet.Store(&set)
	f.setTimeout(30 * time.Second)
	t.Cleanup(func() { close(f.done) })
	return f
}

// Fake operations, as counted.
const (
	opLstat    = "lstat"
	opReadlink = "readlink"
	opStatVFS  = "statvfs"
	opReadDir  = "readdir"
	opFetch    = "fetch"
	opOpen     = "open"
	opRead     = "read"
	opClose    = "close"
)

func callKey(op, peerID, rel string) string { return op + "\x00" + peerID + "\x00" + rel }

// peer returns the peer with id, creating it with an empty root.
func (f *fakeRemote) peer(id string) *fakePeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.peers[id]
	if p == nil {
		p = &fakePeer{nodes: map[string]*fakeNode{"": {mode: os.ModeDir | 0o755, mtime: fakeEpoch}},
			extra: map[string][]pool.DirEntry{}, faults: map[string]error{}, holds: map[string]*listingHold{}}
		f.peers[id] = p
	}
	return p
}

var fakeEpoch = time.Unix(1700000000, 0)

// put stores a node at rel on peer id, with its parent directories.
func (f *fakeRemote) put(id, rel string, n *fakeNode) {
	p := f.peer(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.mtime.IsZero() {
		n.mtime = fakeEpoch
	}
	for d := path.Dir(rel); d != "." && p.nodes[d] == nil; d = path.Dir(d) {
		p.nodes[d] = &fakeNode{mode: os.ModeDir | 0o755, mtime: fakeEpoch}
	}
	p.nodes[rel] = n
}

func (f *fakeRemote) file(id, rel string, data []byte) {
	f.put(id, rel, &fakeNode{mode: 0o644, data: data})
}

func (f *fakeRemote) dir(id, rel string) { f.put(id, rel, &fakeNode{mode: os.ModeDir | 0o755}) }

// change replaces a file's content, with a new mtime as a write would.
func (f *fakeRemote) change(id, rel string, data []byte) {
	p := f.peer(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	n := p.nodes[rel]
	n.data = data
	n.mtime = n.mtime.Add(time.Second)
}

// fault makes op (every operation if "") on rel fail with err; nil
// clears it.
func (f *fakeRemote) fault(id, op, rel string, err error) {
	p := f.peer(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(p.faults, callKey(op, "", rel))
		return
	}
	p.faults[callKey(op, "", rel)] = err
}

// freeze makes the peer stop answering; thaw lets the held calls go on.
func (f *fakeRemote) freeze(id string) {
	p := f.peer(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (f *fakeRemote) thaw(id string) {
	p := f.peer(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

// setTimeout sets the deadline of a frozen peer's calls, those held now
// included.
func (f *fakeRemote) setTimeout(d time.Duration) {
	f.timeout.Store(int64(d))
	next := make(chan struct{})
	close(*f.timeoutSet.Swap(&next))
}

// setDead makes the peer unreachable (or reachable again).
func (f *fakeRemote) setDead(id string, dead bool) {
	p := f.peer(id)
	f.mu.Lock()
	p.dead = dead
	f.mu.Unlock()
}

// count is the number of calls of op on rel of peer id.
func (f *fakeRemote) count(op, id, rel string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[callKey(op, id, rel)]
}

// total is the number of calls of op ("" for all) to peer id ("" for
// all peers).
func (f *fakeRemote) total(op, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, c := range f.calls {
		parts := strings.SplitN(k, "\x00", 3)
		if (op == "" || parts[0] == op) && (id == "" || parts[1] == id) {
			n += c
		}
	}
	return n
}

// hold waits until frozen is closed, or fails as the pool would: with
// ctx's error, or with pool.ErrTimeout once the deadline (timeout from
// now, or as changed meanwhile) passes or the test ends.
func (f *fakeRemote) hold(ctx context.Context, frozen <-chan struct{}) error {
	start := time.Now()
	for {
		set := *f.timeoutSet.Load()
		t := time.NewTimer(time.Until(start.Add(time.Duration(f.timeout.Load()))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return pool.ErrTimeout
		case <-f.done:
			t.Stop()
			return pool.ErrTimeout
		case <-frozen:
			t.Stop()
			return nil
		case <-set:
			t.Stop()
		}
	}
}

// begin counts a call and applies the peer's faults: it returns the
// peer's node at rel (nil if none) or the call's error.
func (f *fakeRemote) begin(ctx context.Context, op string, peer peers.Peer, rel string) (*fakeNode, error) {
	f.mu.Lock()
	f.calls[callKey(op, peer.ID, rel)]++
	p := f.peers[peer.ID]
	closed := f.closed
	var frozen chan struct{}
	held := false
	if p != nil {
		frozen = p.frozen
		held = frozen != nil || p.faultLocked(op, rel) == errHold
	}
	f.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("%s %s: pool closed: %w", op, rel, syscall.EIO)
	case p == nil:
		return nil, fmt.Errorf("%s %s: %w", op, rel, pool.ErrUnreachable)
	}
	if held {
		f.waiting.Add(1)
		defer f.waiting.Add(-1)
		if err := f.hold(ctx, frozen); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, rel, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.dead {
		return nil, fmt.Errorf("%s %s: %w", op, rel, pool.ErrUnreachable)
	}
	if err := p.faultLocked(op, rel); err != nil && err != errHold {
		return nil, fmt.Errorf("%s %s: %w", op, rel, err)
	}
	n := p.nodes[rel]
	if n == nil {
		return nil, fmt.Errorf("%s %s: %w", op, rel, iofs.ErrNotExist)
	}
	return n, nil
}

// errHold as a fault makes the call hang as a frozen peer's do, until
// the deadline or the caller gives up.
var errHold = errors.New("held")

func (p *fakePeer) faultLocked(op, rel string) error {
	if err := p.faults[callKey(op, "", rel)]; err != nil {
		return err
	}
	return p.faults[callKey("", "", rel)]
}

// stat is the node's attributes as an SFTP server sends them.
func (n *fakeNode) stat() sftp.FileStat {
	mode := uint32(n.mode.Perm())
	if n.mode&os.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if n.mode&os.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if n.mode&os.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	switch {
	case n.mode.IsDir():
		mode |= syscall.S_IFDIR
	case n.mode&os.ModeSymlink != 0:
		mode |= syscall.S_IFLNK
	default:
		mode |= syscall.S_IFREG
	}
	size := len(n.data)
	if n.mode&os.ModeSymlink != 0 {
		size = len(n.target)
	}
	return sftp.FileStat{Size: uint64(size), Mode: mode, Mtime: uint32(n.mtime.Unix()), Atime: uint32(n.mtime.Unix())}
}

// fakeInfo is an os.FileInfo as pkg/sftp returns it (Sys is the raw
// *sftp.FileStat).
type fakeInfo struct {
	name string
	st   sftp.FileStat
	mode os.FileMode
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return int64(i.st.Size) }
func (i fakeInfo) Mode() os.FileMode  { return i.mode }
func (i fakeInfo) ModTime() time.Time { return time.Unix(int64(i.st.Mtime), 0) }
func (i fakeInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fakeInfo) Sys() any           { return &i.st }

var _ Remote = (*fakeRemote)(nil)

func (f *fakeRemote) Lstat(ctx context.Context, peer peers.Peer, rel string) (os.FileInfo, error) {
	n, err := f.begin(ctx, opLstat, peer, rel)
	if err != nil {
		return nil, err
	}
	if rtt := time.Duration(f.lstatRTT.Load()); rtt > 0 {
		time.Sleep(rtt)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeInfo{name: path.Base(rel), st: n.stat(), mode: n.mode}, nil
}

func (f *fakeRemote) ReadLink(ctx context.Context, peer peers.Peer, rel string) (string, error) {
	n, err := f.begin(ctx, opReadlink, peer, rel)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.mode&os.ModeSymlink == 0 {
		return "", fmt.Errorf("readlink %s: not a symlink: %w", rel, syscall.EINVAL)
	}
	return n.target, nil
}

func (f *fakeRemote) StatVFS(ctx context.Context, peer peers.Peer, rel string) (*sftp.StatVFS, error) {
	if _, err := f.begin(ctx, opStatVFS, peer, rel); err != nil {
		return nil, err
	}
	return &sftp.StatVFS{Bsize: 4096, Frsize: 4096, Blocks: 1000, Bfree: 500, Bavail: 400, Files: 100, Ffree: 50, Namemax: 255}, nil
}

// fakeReply is how many entries one NAME reply of the fake carries (the
// budget is asked per reply, as the pool does).
const fakeReply = 100

func (f *fakeRemote) ReadDirEach(ctx context.Context, peer peers.Peer, rel string, limit int, each func([]pool.DirEntry) bool) (bool, error) {
	n, err := f.begin(ctx, opReadDir, peer, rel)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	if !n.mode.IsDir() {
		f.mu.Unlock()
		return false, fmt.Errorf("readdir %s: %w", rel, syscall.ENOTDIR)
	}
	p := f.peers[peer.ID]
	var all []pool.DirEntry
	for r, c := range p.nodes {
		if r != "" && parentRel(r) == rel {
			all = append(all, pool.DirEntry{Name: path.Base(r), Attrs: c.stat()})
		}
	}
	// A server's order, not the file system's: reversed by name.
	sort.Slice(all, func(i, j int) bool { return all[i].Name > all[j].Name })
	all = append(all, p.extra[rel]...)
	hold := p.holds[rel]
	f.mu.Unlock()
	sent := 0
	for len(all) > 0 {
		if hold != nil && sent >= hold.after {
			hold.reachedOnce.Do(func() { close(hold.reached) })
			select {
			case <-hold.release:
			case <-ctx.Done():
				return false, fmt.Errorf("readdir %s: %w", rel, ctx.Err())
			case <-f.done:
				return false, fmt.Errorf("readdir %s: %w", rel, pool.ErrTimeout)
			}
		}
		k := min(len(all), fakeReply)
		if limit > 0 && sent+k > limit {
			k = limit - sent
			if k == 0 {
				return true, nil
			}
		}
		if !each(all[:k]) {
			return false, fmt.Errorf("readdir %s: %w", rel, pool.ErrListingBudget)
		}
		f.listed.Add(int64(k))
		sent += k
		all = all[k:]
	}
	return false, nil
}

// listingHold stops a listing after some entries until released.
type listingHold struct {
	after       int
	reached     chan struct{} // closed when the listing stops there
	reachedOnce sync.Once
	release     chan struct{}
	releaseOnce sync.Once
}

// let lets the held listing go on.
func (h *listingHold) let() { h.releaseOnce.Do(func() { close(h.release) }) }

// holdListing makes listings of rel on peer id stop after the first
// after entries (rounded up to a reply) until the returned hold's release
// is closed.
func (f *fakeRemote) holdListing(id, rel string, after int) *listingHold {
	p := f.peer(id)
	h := &listingHold{after: after, reached: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	p.holds[rel] = h
	f.mu.Unlock()
	return h
}

func (f *fakeRemote) Fetch(ctx context.Context, peer peers.Peer, rel string, n int) ([]byte, error) {
	node, err := f.begin(ctx, opFetch, peer, rel)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data := append([]byte(nil), node.data[:min(n, len(node.data))]...)
	f.sent.Add(int64(len(data)))
	return data, nil
}

func (f *fakeRemote) OpenFile(ctx context.Context, peer peers.Peer, rel string, size, from int64) (RemoteFile, error) {
	n, err := f.begin(ctx, opOpen, peer, rel)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.mode.IsDir() {
		return nil, fmt.Errorf("open %s: %w", rel, syscall.EISDIR)
	}
	r := &fakeFile{f: f, peer: peer, rel: rel}
	r.size.Store(size)
	return r, nil
}

func (f *fakeRemote) Forget(id string) {
	f.mu.Lock()
	f.forgot = append(f.forgot, id)
	f.mu.Unlock()
}

func (f *fakeRemote) forgotten() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.forgot...)
}

func (f *fakeRemote) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// fakeFile reads the peer's current content of a file, as a remote
// handle does, and stops at Size as the pool's Reader does.
type fakeFile struct {
	f      *fakeRemote
	peer   peers.Peer
	rel    string
	size   atomic.Int64
	closed atomic.Bool
}

func (r *fakeFile) Size() int64 { return r.size.Load() }

func (r *fakeFile) Grow(size int64) {
	for {
		old := r.size.Load()
		if size <= old || r.size.CompareAndSwap(old, size) {
			return
		}
	}
}

func (r *fakeFile) ReadAtContext(ctx context.Context, b []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, os.ErrClosed
	}
	if size := r.Size(); off >= size {
		return 0, io.EOF
	} else if int64(len(b)) > size-off {
		b = b[:size-off]
	}
	n, err := r.f.begin(ctx, opRead, r.peer, r.rel)
	if err != nil {
		return 0, err
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if off >= int64(len(n.data)) {
		return 0, io.EOF
	}
	k := copy(b, n.data[off:])
	r.f.sent.Add(int64(k))
	if k < len(b) {
		return k, io.EOF
	}
	return k, nil
}

func (r *fakeFile) ReadAtNoCopy(ctx context.Context, b []byte, off int64) ([][]byte, func(), error) {
	k, err := r.ReadAtContext(ctx, b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		return nil, func() {}, err
	}
	return [][]byte{b[:k]}, func() {}, nil
}

func (r *fakeFile) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	_, err := r.f.begin(context.Background(), opClose, r.peer, r.rel)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil // removed on the peer while open: the handle still closes
	}
	return err
}
