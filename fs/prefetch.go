//go:build !windows

package fs

import (
	"container/list"
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Sibling prefetch. Over the internet a small file costs two round trips
// (OPEN, then READ), one file after the other, while the link could carry
// dozens at once. When a reader opens the files of one directory in
// listing order (grep -r, cp -r, tar, rsync, thumbnailers), the next files
// are fetched ahead, many at once across the peer's connections, into a
// bounded in-memory content cache, and their opens and reads are then
// served from memory.
//
// Like read-ahead it starts small (after two opens in order), doubles its
// window while it hits, halves it on misses, and stops at the first open
// out of order, so random access costs at most a few files. A walk starts
// at once, at the first file of a directory just listed, and goes on into
// the next directories of the parent's listing (newRunLocked,
// scheduleNextLocked). Small files
// are fetched whole, big ones only their first prefetchPrefix bytes.
//
// Correctness: an entry is keyed by peer, path, size and mtime, and served
// only while younger than AttrTTL and only if the file's attributes (which
// are themselves at most AttrTTL old) still match. Only names from a
// listing the peer gave (so never what the share hides), never names
// starting with ".", only regular files with read permission are fetched.
// Every fetch runs under the pool's deadlines; a reader waiting for a
// fetch in flight can be interrupted, and gets the fetch's error.
const (
	prefetchWhole       = 1 << 20 // files up to this size are fetched whole
	prefetchPrefix      = 256 << 10
	prefetchInflightMax = 8 << 20 // bytes being fetched at once, at most
	prefetchFlightsMax  = 256     // fetches at once, at most
	prefetchStartWindow = 4       // files ahead after two opens in order
	prefetchWalkWindow  = 128     // files ahead when a walk starts on a directory
	prefetchMaxWindow   = 256     // files ahead, at most
	prefetchStartGap    = 3       // a later file at most this far on counts as in order
	prefetchSeqGap      = 16      // the same once a run is going (parallel readers)
	prefetchRuns        = 256     // directories whose reading order is tracked
	prefetchMomentum    = 2 * time.Second
	prefetchDirsAhead   = 16   // directories after the reader's to fetch into
	prefetchOpened      = 4096 // files whose opens are remembered
	prefetchScanMax     = 1024 // parent's entries looked at for the next directories
)

// contentEntry is the start (or all) of one file's content.
type contentEntry struct {
	key   string
	size  uint64
	mtime uint64
	nsec  uint32
	data  []byte
	at    time.Time // when the fetch started: the age of the content
	used  bool
	elem  *list.Element
	// Open handles reading data; it goes back to the pool's buffers
	// when the last is released after the entry was dropped.
	refs    int
	dropped bool
}

func (e *contentEntry) matches(a *fuse.Attr) bool {
	return e.size == a.Size && e.mtime == a.Mtime && e.nsec == a.Mtimensec
}

// contentFlight is a fetch in flight; readers opening the file wait for it.
type contentFlight struct {
	done  chan struct{}
	entry *contentEntry // nil on failure
	err   error
	want  int
}

// dirRun is how one directory's files are being opened, followed in three
// orders at once: as listed (the order READDIR gave the kernel, which is
// the peer's: grep -r, find and tar walk a directory so), by name (rsync,
// shell globs) and by inode number (cp -r and other coreutils sort a
// directory by inode before copying it).
type dirRun struct {
	o    [orders]orderRun
	used time.Time
}

const orders = 3 // byName, byIno, as listed

// orderRun follows the opens of a directory's files in one order;
// positions are indexes into that order.
type orderRun struct {
	last   int  // highest position opened
	ahead  int  // highest position scheduled for prefetch
	streak int  // opens in order
	window int  // files ahead to keep fetched; 0: off
	fresh  bool // the last open moved forward in this order
	beyond int  // files scheduled in the directories after this one
}

// see notes the open of position i and reports whether it lay in the
// window already scheduled. A step forward counts as in order when it is
// short (a reader skipping a file or two); once a run is going, longer
// ones too and any step inside the window fetched, as parallel readers
// overtake each other (xargs -P16 -n8 cat opens files 0, 8, …, 120,
// then 1, 9, …, in whatever order its processes get there); but a long
// step back to a file opened before (again) starts over: a second pass.
func (o *orderRun) see(i int, again bool) (expected bool) {
	expected = o.window > 0 && i <= o.ahead
	gap := prefetchStartGap
	if o.streak >= 2 {
		gap = prefetchSeqGap
	}
	o.fresh = false
	switch {
	case i > o.last && (i-o.last <= gap || o.streak >= 2 && expected):
		o.streak++
		o.fresh = true
	case i <= o.last && (o.last-i <= gap || !again && o.last-i <= o.window) && o.streak >= 2:
	default:
		o.streak, o.window, o.ahead, o.last = 1, 0, i, i
	}
	o.last = max(o.last, i)
	if o.streak >= 2 && o.window == 0 {
		o.window = prefetchStartWindow
	}
	return expected
}

// active is the order the reader follows: of those the last open moved
// forward in, the one with the longer streak; or -1.
func (r *dirRun) active() int {
	best := -1
	for k := range r.o {
		if r.o[k].window > 0 && r.o[k].fresh && (best < 0 || r.o[k].streak > r.o[best].streak) {
			best = k
		}
	}
	return best
}

// prefetcher holds the content cache, the fetches in flight and the
// reading order per directory.
type prefetcher struct {
	fsys   *filesys
	maxMem int64
	maxIn  int64

	mu       sync.Mutex
	entries  map[string]*contentEntry
	lru      *list.List // of *contentEntry, oldest first
	mem      int64      // bytes held by entries
	flights  map[string]*contentFlight
	inBytes  int64
	runs     map[string]*dirRun // by key(peer, dir)
	momentum map[string]momentum
	listedAt map[string]time.Time // by key(peer, dir): when a reader opened it to read it
	// openedAt is when a reader opened each file: one opened already is
	// not fetched again (the kernel caches what it read), when parallel
	// readers make another order look followed for a while.
	openedAt map[string]time.Time
	stats    prefetchStats
}

// momentum carries a reader's pace from one directory to its next, so a
// walk does not start over in every directory.
type momentum struct {
	window int
	at     time.Time
}

type prefetchStats struct {
	hits, misses, fetches, failed int
	fetched, wasted               int64
}

func newPrefetcher(fsys *filesys, maxMem int64) *prefetcher {
	if maxMem <= 0 || fsys.cache == nil {
		return nil // off, or nothing could be served fresh
	}
	return &prefetcher{fsys: fsys, maxMem: maxMem, maxIn: min(prefetchInflightMax, maxMem/4),
		entries: map[string]*contentEntry{}, lru: list.New(), flights: map[string]*contentFlight{},
		runs: map[string]*dirRun{}, momentum: map[string]momentum{}, listedAt: map[string]time.Time{},
		openedAt: map[string]time.Time{}}
}

// listed notes that a reader opened peerID's dir to read it: a walk opens
// its first file next.
func (pf *prefetcher) listed(peerID, dir string) {
	if pf == nil {
		return
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if len(pf.listedAt) >= prefetchRuns {
		clear(pf.listedAt) // only the last moments count
	}
	pf.listedAt[key(peerID, dir)] = time.Now()
}

// opened notes that the reader opens rel and schedules fetches of the
// files after it. It reports whether rel lay in the window already
// scheduled (so not finding it cached is a miss).
func (pf *prefetcher) opened(p peers.Peer, peerID, rel string) (expected bool) {
	if pf == nil {
		return false
	}
	dir := parentRel(rel)
	d, ok := pf.fsys.cache.dir(peerID, dir)
	if !ok {
		return false // no listing the reader saw: nothing to predict from
	}
	i := d.index(path.Base(rel))
	if i < 0 {
		return false
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	rk := key(peerID, dir)
	run := pf.runs[rk]
	now := time.Now()
	if run == nil {
		run = pf.newRunLocked(rk, peerID, d, i, now)
	}
	run.used = now
	if len(pf.openedAt) >= prefetchOpened {
		clear(pf.openedAt) // at worst a file is fetched again
	}
	fk := key(peerID, rel)
	_, again := pf.openedAt[fk]
	pf.openedAt[fk] = now
	wasActive := run.active()
	for k := range run.o {
		if run.o[k].see(d.pos(k, i), again) && k == wasActive {
			expected = true
		}
	}
	k := run.active()
	if k < 0 {
		if wasActive >= 0 && run.o[wasActive].window == 0 {
			pf.logLocked("prefetch stopped: files opened out of order", peerID, dir)
		}
		return expected
	}
	pf.momentum[peerID] = momentum{window: run.o[k].window, at: now}
	pf.scheduleLocked(p, peerID, dir, d, k, &run.o[k], d.pos(k, i))
	return expected
}

// newRunLocked starts tracking a directory; a reader that just read
// another directory in order and now opens its first file here keeps its
// pace.
func (pf *prefetcher) newRunLocked(rk, peerID string, d *dirListing, i int, now time.Time) *dirRun {
	if len(pf.runs) >= prefetchRuns {
		oldK, oldT := "", now
		for k, r := range pf.runs {
			if r.used.Before(oldT) {
				oldK, oldT = k, r.used
			}
		}
		delete(pf.runs, oldK)
	}
	run := &dirRun{}
	m, ok := pf.momentum[peerID]
	for k := range run.o {
		o := &run.o[k]
		o.last, o.ahead = -1, d.pos(k, i)
		if d.pos(k, i) != d.firstFile(k) {
			continue
		}
		// The first file of a directory is where a walk (grep -r, cp -r,
		// tar) starts, the more so right after the directory was read:
		// the next files are fetched now rather than after another open's
		// two round trips, and as many as the link can carry in one round
		// trip for a walk. A single file opened at random costs at most
		// prefetchStartWindow files more (prefetchWalkWindow right after
		// a listing), once per directory.
		o.last, o.ahead, o.streak, o.window = d.pos(k, i)-1, d.pos(k, i)-1, 1, prefetchStartWindow
		if now.Sub(pf.listedAt[rk]) < prefetchMomentum {
			o.window = prefetchWalkWindow
		}
		if ok && now.Sub(m.at) < prefetchMomentum {
			o.window = max(o.window, m.window/2)
		}
	}
	pf.runs[rk] = run
	return run
}

// scheduleLocked starts fetches of the files after index i, up to the
// run's window, within the memory and in-flight bounds.
func (pf *prefetcher) scheduleLocked(p peers.Peer, peerID, dir string, d *dirListing, k int, run *orderRun, i int) {
	j := max(run.ahead+1, i+1)
	for ; j < d.len() && j <= i+run.window; j++ {
		run.ahead = j
		if !pf.tryStartLocked(p, peerID, dir, d.at(d.order(k, j))) {
			run.ahead = j - 1 // try again at the next open
			return
		}
	}
	if n, done, _ := d.state(); done && j >= n && i+run.window >= n {
		pf.scheduleNextLocked(p, peerID, dir, k, run, i+run.window-(n-1))
	}
}

// scheduleNextLocked carries a run that reached the end of its directory
// on into the directories after it in the parent's listing, in the same
// order, as a walk (grep -r, cp -r, tar) goes on there: their first
// files, up to n in all (the rest of the window), are fetched while the
// reader finishes this one, so the next directory's first open does not
// cost two round trips. Only directories whose listing is cached count
// (the walk lists a directory before it reads it); it stops at the first
// that is not.
func (pf *prefetcher) scheduleNextLocked(p peers.Peer, peerID, dir string, k int, run *orderRun, n int) {
	if dir == "" {
		return // the peer's root has no siblings
	}
	parent := parentRel(dir)
	pd, ok := pf.fsys.cache.dir(peerID, parent)
	if !ok {
		return
	}
	at := pd.index(path.Base(dir))
	if at < 0 {
		return
	}
	counted, dirs := 0, 0
	from := pd.pos(k, at) + 1
	// Bounded: this runs at every open near a directory's end, under
	// pf.mu, and the parent may hold many thousands of files.
	for j := from; j < min(pd.len(), from+prefetchScanMax) && counted < n && dirs < prefetchDirsAhead; j++ {
		e := pd.at(pd.order(k, j))
		if e.fileType() != syscall.S_IFDIR || strings.HasPrefix(e.name, ".") {
			continue
		}
		sub := path.Join(parent, e.name)
		sd, ok := pf.fsys.cache.dir(peerID, sub)
		if !ok || !sd.complete() {
			return
		}
		dirs++
		for q := 0; q < sd.len() && counted < n; q++ {
			if counted++; counted <= run.beyond {
				continue // scheduled at an earlier open
			}
			if !pf.tryStartLocked(p, peerID, sub, sd.at(sd.order(k, q))) {
				return // try again at the next open
			}
			run.beyond = counted
		}
	}
}

// tryStartLocked starts fetching dir's entry e unless it is not a file to
// fetch ahead or is fetched already. It reports false when a bound (fetches
// in flight, memory) left it unfetched.
func (pf *prefetcher) tryStartLocked(p peers.Peer, peerID, dir string, e *dirEntry) bool {
	if len(pf.flights) >= prefetchFlightsMax {
		return false
	}
	if e.fileType() != syscall.S_IFREG || strings.HasPrefix(e.name, ".") {
		return true
	}
	crel := path.Join(dir, e.name)
	ce, ok := pf.fsys.attrOf(peerID, crel)
	if !ok || ce.errno != 0 || ce.attr.Mode&0o444 == 0 || ce.attr.Size == 0 {
		return true // unknown, unreadable, or nothing to fetch
	}
	k := key(peerID, crel)
	if old := pf.entries[k]; old != nil && old.matches(&ce.attr) {
		return true
	}
	if at, ok := pf.openedAt[k]; ok && time.Since(at) < pf.fsys.opts.AttrTTL {
		return true
	}
	if pf.flights[k] != nil {
		return true
	}
	want := int(min(ce.attr.Size, prefetchPrefix))
	if ce.attr.Size <= prefetchWhole {
		want = int(ce.attr.Size)
	}
	if pf.inBytes+int64(want) > pf.maxIn || !pf.makeRoomLocked(int64(want)) {
		return false
	}
	pf.startLocked(p, k, crel, want, ce.attr)
	return true
}

// makeRoomLocked evicts the oldest entries until want more bytes (and
// those in flight) fit in the memory bound.
func (pf *prefetcher) makeRoomLocked(want int64) bool {
	if want+pf.inBytes > pf.maxMem {
		return false
	}
	// Entries past AttrTTL can never be served: they go first.
	for front := pf.lru.Front(); front != nil; front = pf.lru.Front() {
		if e := front.Value.(*contentEntry); time.Since(e.at) < pf.fsys.opts.AttrTTL {
			break
		}
		pf.dropLocked(front.Value.(*contentEntry))
	}
	for pf.mem+pf.inBytes+want > pf.maxMem {
		front := pf.lru.Front()
		if front == nil {
			return false
		}
		pf.dropLocked(front.Value.(*contentEntry))
	}
	return true
}

func (pf *prefetcher) dropLocked(e *contentEntry) {
	pf.lru.Remove(e.elem)
	delete(pf.entries, e.key)
	pf.mem -= int64(cap(e.data))
	if !e.used {
		pf.stats.wasted += int64(len(e.data))
	}
	e.dropped = true
	if e.refs == 0 {
		pool.RecycleFetched(e.data)
	}
}

// unref ends one open handle's use of e.data. consumed: the handle
// handed all of it to the kernel, whose page cache now holds it (a reopen
// of the unchanged file keeps that cache), so the entry has done its job
// and its buffer is reused for the next fetch rather than held until
// evicted: fresh memory for every file costs a page fault per 4 KiB.
func (pf *prefetcher) unref(e *contentEntry, consumed bool) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	e.refs--
	if e.refs > 0 {
		return
	}
	if !e.dropped && consumed {
		pf.dropLocked(e)
		return
	}
	if e.dropped {
		pool.RecycleFetched(e.data)
	}
}

// startLocked fetches one file in the background.
func (pf *prefetcher) startLocked(p peers.Peer, k, rel string, want int, a fuse.Attr) {
	f := &contentFlight{done: make(chan struct{}), want: want}
	pf.flights[k] = f
	pf.inBytes += int64(want)
	pf.stats.fetches++
	at := time.Now()
	go func() {
		data, err := pf.fsys.opts.Pool.Fetch(pf.fsys.ctx, p, rel, want)
		if err == nil && len(data) != want {
			err = errChanged // shorter than listed: changed since
		}
		pf.mu.Lock()
		delete(pf.flights, k)
		pf.inBytes -= int64(want)
		pf.stats.fetched += int64(len(data))
		if err != nil {
			pf.stats.failed++
			pf.stats.wasted += int64(len(data))
			f.err = err
			pf.stopPeerLocked(k, err)
			pool.RecycleFetched(data)
		} else if pf.makeRoomLocked(int64(cap(data))) {
			e := &contentEntry{key: k, size: a.Size, mtime: a.Mtime, nsec: a.Mtimensec, data: data, at: at}
			if old := pf.entries[k]; old != nil {
				pf.dropLocked(old)
			}
			e.elem = pf.lru.PushBack(e)
			pf.entries[k] = e
			pf.mem += int64(cap(data))
			f.entry = e
		} else {
			pf.stats.wasted += int64(len(data))
			pool.RecycleFetched(data)
		}
		pf.mu.Unlock()
		close(f.done)
	}()
}

var errChanged = errors.New("file changed while prefetched")

// stopPeerLocked switches prefetching off for the peer's directories
// after a fetch failed for a reason other than the file itself: a frozen
// or gone peer gets no further fetches until a reader opens in order
// again.
func (pf *prefetcher) stopPeerLocked(k string, err error) {
	switch pool.Errno(err) {
	case syscall.ENOENT, syscall.EACCES, syscall.EPERM:
		return
	}
	if errors.Is(err, errChanged) {
		return
	}
	peerID, _, _ := strings.Cut(k, "\x00")
	for rk, run := range pf.runs {
		if strings.HasPrefix(rk, peerID+"\x00") {
			run.o = [orders]orderRun{}
		}
	}
	delete(pf.momentum, peerID)
	pf.fsys.log.Debug("prefetch stopped: a fetch failed", "path", k[len(peerID)+1:], "err", err)
}

// content returns the cached start of rel when it matches a and is fresh,
// waiting for a fetch in flight (interruptibly). A failed fetch's errno is
// returned for errors of the peer (timeouts, lost connections), so a
// frozen peer is not asked twice; any other failure falls back to a
// normal open (nil, 0). The caller reads the entry's data until it calls
// unref (exactly once).
func (pf *prefetcher) content(ctx context.Context, peerID, rel string, a *fuse.Attr, expected bool) (*contentEntry, syscall.Errno) {
	if pf == nil {
		return nil, 0
	}
	k := key(peerID, rel)
	pf.mu.Lock()
	f := pf.flights[k]
	pf.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, syscall.EINTR
		}
		if f.err != nil && !errors.Is(f.err, errChanged) {
			switch errno := pool.Errno(f.err); errno {
			case syscall.ETIMEDOUT, syscall.EHOSTUNREACH:
				return nil, errno
			}
		}
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	e := pf.entries[k]
	if e != nil && (!e.matches(a) || time.Since(e.at) >= pf.fsys.opts.AttrTTL) {
		pf.dropLocked(e) // changed or too old: fetch again
		e = nil
	}
	var o *orderRun
	if run := pf.runs[key(peerID, parentRel(rel))]; run != nil && run.active() >= 0 {
		o = &run.o[run.active()]
	}
	if e == nil {
		if expected {
			pf.stats.misses++
			if o != nil && o.window > prefetchStartWindow {
				o.window /= 2
			}
		}
		return nil, 0
	}
	if o != nil {
		o.window = min(2*o.window, prefetchMaxWindow)
	}
	if !e.used {
		pf.stats.hits++
		e.used = true
		if pf.stats.hits%64 == 0 {
			pf.logLocked("prefetch", peerID, parentRel(rel))
		}
	}
	pf.lru.MoveToBack(e.elem)
	pf.fsys.log.Debug("prefetch hit", "path", rel, "bytes", len(e.data))
	e.refs++
	return e, 0
}

func (pf *prefetcher) logLocked(msg, peerID, dir string) {
	s := pf.stats
	pf.fsys.log.Debug(msg, "dir", dir, "hits", s.hits, "misses", s.misses, "fetches", s.fetches,
		"failed", s.failed, "bytes_fetched", s.fetched, "bytes_wasted", s.wasted, "bytes_cached", pf.mem)
}

// logStats logs the totals (at unmount).
func (pf *prefetcher) logStats() {
	if pf == nil {
		return
	}
	pf.mu.Lock()
	defer pf.mu.Unlock()
	pf.logLocked("prefetch totals", "", "")
}

func parentRel(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

// firstFile is the position in order k of the first regular file not
// starting with ".".
func (d *dirListing) firstFile(k int) int {
	for j := range d.len() {
		e := d.at(d.order(k, j))
		if e.fileType() == syscall.S_IFREG && !strings.HasPrefix(e.name, ".") {
			return j
		}
	}
	return -1
}

// order maps position j in order k (0: by name, 1: by inode, 2: as
// listed) to an index into the listing.
func (d *dirListing) order(k, j int) int {
	switch k {
	case 0:
		d.byNameOnce()
		return int(d.byName[j])
	case 1:
		d.byInoOnce()
		return int(d.byIno[j])
	}
	return j
}

// pos maps an index into the listing to its position in order k.
func (d *dirListing) pos(k, i int) int {
	switch k {
	case 0:
		d.byNameOnce()
		return int(d.namePos[i])
	case 1:
		d.byInoOnce()
		return int(d.inoPosIdx[i])
	}
	return i
}
