//go:build !windows

package fs

import (
	"context"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers/pool"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Directory prefetch: when the user opens a directory, the listings of its
// subdirectories and theirs (prefetchDepth levels) are fetched in the
// background, several at a time, so a recursive walk (ls -lR, find, du, cp -r) finds the next
// listing waiting instead of paying a round trip per directory.
//
// A peer decides how big its listings are, so prefetching is bounded by a
// credit of entries: every prefetched entry spends one, and opening a
// prefetched listing gives its entries back. When nobody opens what was
// prefetched, the credit runs out and prefetching stops (a slow refill
// lets it start again later). Listings of more than prefetchMaxEntries
// entries are never prefetched: reading one stops at that many, and the
// directory is remembered as too big for a while.
const (
	prefetchMaxSubdirs = 256 // subdirectories of one directory fetched ahead, the first in its listing's order
	prefetchParallel   = 8   // listings fetched at once in the background
	prefetchDepth      = 2   // levels below an opened directory fetched ahead
	prefetchMaxEntries = 10000
	prefetchCredit     = 50000               // entries prefetched and not yet opened, at most
	prefetchRefill     = prefetchCredit / 60 // credit regained per second without any opendir
	prefetchMinCredit  = 1000                // credit a background fetch needs to start
	tooBigMemory       = 4096                // directories remembered as too big to prefetch
	tooBigTTL          = 10 * time.Minute
	maxNameBytes       = 255 // longer names cannot be looked up on Linux anyway
)

// prefetchBudget is the credit described above. A background fetch
// spends it reply by reply as entries arrive (not a worst case up front),
// so eight small listings can be in flight at once.
type prefetchBudget struct {
	mu     sync.Mutex
	credit float64
	last   time.Time
	tooBig *expirable.LRU[string, struct{}]
}

func newPrefetchBudget() *prefetchBudget {
	return &prefetchBudget{
		credit: prefetchCredit,
		last:   time.Now(),
		tooBig: expirable.NewLRU[string, struct{}](tooBigMemory, nil, tooBigTTL),
	}
}

// refillLocked adds the credit regained since the last look.
func (b *prefetchBudget) refillLocked() {
	now := time.Now()
	b.credit = min(prefetchCredit, b.credit+now.Sub(b.last).Seconds()*prefetchRefill)
	b.last = now
}

// spend takes n entries of credit, or reports false when fewer are left
// (listings nobody opened spent it).
func (b *prefetchBudget) spend(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked()
	if b.credit < float64(n) {
		// The refused reply and those pipelined behind it were read
		// too: nothing is left until the refill.
		b.credit = 0
		return false
	}
	b.credit -= float64(n)
	return true
}

// left reports whether enough credit is left to start another fetch: a
// fetch refused at its first reply still read a few replies, so starting
// on a crumb of refill would read more than the credit allows.
func (b *prefetchBudget) left() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked()
	return b.credit >= prefetchMinCredit
}

// give returns n entries of credit.
func (b *prefetchBudget) give(n int) {
	b.mu.Lock()
	b.credit = min(prefetchCredit, b.credit+float64(n))
	b.mu.Unlock()
}

// listDir returns the listing of rel on the peer, from the cache, from a
// fetch already in flight, or from the peer (at most MaxListing entries).
// A fetch is shown as it arrives: listDir returns once the listing holds
// its first entries or has ended (so opendir still reports an OPENDIR's
// error), and readers wait for the rest entry by entry.
func (fsys *filesys) listDir(ctx context.Context, peerID, rel string) (*dirListing, syscall.Errno) {
	for {
		if d, ok := fsys.cache.dir(peerID, rel); ok {
			fsys.opened(d)
			return d, 0
		}
		k := key(peerID, rel)
		fsys.flightMu.Lock()
		if d, ok := fsys.cache.dir(peerID, rel); ok {
			// A flight ended since the look above (it caches and ends
			// under flightMu).
			fsys.flightMu.Unlock()
			fsys.opened(d)
			return d, 0
		}
		d, inFlight := fsys.flights[k]
		if !inFlight {
			d = newDirListing(peerID, rel)
			fsys.flights[k] = d
		}
		fsys.flightMu.Unlock()
		if !inFlight {
			// The fetch outlives the opendir that started it: its
			// readers, and the cache, take the rest.
			go fsys.runFlight(fsys.ctx, k, d, fsys.opts.MaxListing)
		} else if spent, ok := d.adopt(); ok {
			// A background fetch of it (a lookup starts one) goes on
			// as this reader's, shown as it arrives.
			fsys.prefetch.give(spent)
		} else {
			// It gave up (a big listing, no credit) or is about to, or
			// it failed (a speculative fetch may race a change on the
			// peer): once it has ended (it reads at most
			// prefetchMaxEntries), it is cached or gone, and we fetch
			// it ourselves.
			if errno := d.waitDone(ctx); errno != 0 {
				return nil, errno
			}
			continue
		}
		if n, _, errno := d.wait(ctx, 0); errno != 0 && n == 0 {
			return nil, errno
		}
		return d, 0
	}
}

// opened gives back the prefetch credit of a listing someone opens.
func (fsys *filesys) opened(d *dirListing) {
	if d.prefetched.CompareAndSwap(true, false) {
		fsys.prefetch.give(d.len())
	}
}

// runFlight fetches listing d (at most limit entries), caches it when it
// is complete or cut, and ends it. A fetch that ends early (an error, a
// prefetch giving up) is not cached.
func (fsys *filesys) runFlight(ctx context.Context, k string, d *dirListing, limit int) {
	truncated, gaveUp, errno := fsys.fetchDir(ctx, d, limit)
	// One step for askers: they find the flight still running, or the
	// listing cached, or (after a failure) neither.
	fsys.flightMu.Lock()
	defer fsys.flightMu.Unlock()
	if errno == 0 && !gaveUp {
		// Cached before it ends, so a reader who saw its end finds it
		// (the fetch ended well: nothing adds to it any more).
		d.prefetched.Store(d.background())
		fsys.cache.putDir(d.peerID, d.rel, d)
		fsys.relist.listed(d.peerID, d.rel, d.len())
	}
	d.finish(truncated, gaveUp, errno)
	delete(fsys.flights, k)
}

// fetchDir reads at most limit entries into d as they arrive. A
// background fetch that passes its own limit gives up and remembers the
// directory as too big; a user's listing is cut at limit, with a warning
// (once per directory).
func (fsys *filesys) fetchDir(ctx context.Context, d *dirListing, limit int) (truncated, gaveUp bool, errno syscall.Errno) {
	peerID, rel := d.peerID, d.rel
	e, ok := fsys.opts.Registry.ByID(peerID)
	if !ok {
		return false, false, syscall.ENOENT
	}
	truncated, err := fsys.opts.Pool.ReadDirEach(ctx, e.Peer, rel, limit, d.add)
	d.mu.Lock()
	bg, refused, spent, skipped := d.bg, d.refused, d.spent, d.skipped
	d.mu.Unlock()
	switch {
	case refused == refusedNoCredit:
		fsys.log.Debug("prefetch credit spent during a listing; not prefetching further until listings are opened", "peer", e.DisplayName, "path", rel)
		return false, true, 0
	case refused == refusedTooBig || (bg && err == nil && truncated):
		fsys.prefetch.tooBig.Add(key(peerID, rel), struct{}{})
		fsys.log.Debug("not prefetching a big directory", "peer", e.DisplayName, "path", rel, "more_than", d.bgLimit)
		return false, true, 0
	case err != nil:
		errno := pool.Errno(err)
		if bg {
			// Quiet: a speculative fetch of a file's listing fails, and a
			// reader who opens the directory gets the error itself.
			fsys.log.Debug("prefetch readdir", "path", rel, "err", err)
		} else {
			fsys.logErr("readdir", rel, err, errno)
		}
		return false, false, errno
	}
	if truncated {
		fsys.warnCut(e.DisplayName, peerID, rel, limit)
	}
	if n := d.len(); bg && spent > n {
		fsys.prefetch.give(spent - n) // skipped and repeated names are not kept
	}
	if skipped > 0 {
		fsys.log.Warn("skipped listed names that cannot be file names here", "peer", e.DisplayName, "path", "/"+rel, "count", skipped)
	}
	return truncated, false, 0
}

// newCutWarned remembers the directories whose cut listing was reported.
func newCutWarned() *lru.Cache[string, struct{}] {
	c, _ := lru.New[string, struct{}](tooBigMemory) // fails only for a size <= 0
	return c
}

// attrOf returns the cached attributes of rel: the newer of its own entry
// (an LSTAT's answer) and its parent's cached listing's.
func (fsys *filesys) attrOf(peerID, rel string) (attrEntry, bool) {
	a, ok := fsys.cache.attr(peerID, rel)
	if rel == "" {
		return a, ok
	}
	d, dok := fsys.cache.dir(peerID, parentRel(rel))
	if !dok {
		d, dok = fsys.flight(peerID, parentRel(rel))
	}
	if !dok || (ok && !a.at.Before(d.start)) {
		return a, ok
	}
	e, _, found := d.find(path.Base(rel))
	if !found {
		// A listing on its way (a relisting, a listing another reader
		// opened) answers for the names that have arrived.
		e, found = d.arriving(path.Base(rel))
	}
	if !found {
		return a, ok
	}
	out := attrEntry{at: d.start}
	e.attr(fsys.owner, inoOf(peerID, rel), &out.attr)
	return out, true
}

// flight is the listing of rel being fetched, if any.
func (fsys *filesys) flight(peerID, rel string) (*dirListing, bool) {
	fsys.flightMu.Lock()
	defer fsys.flightMu.Unlock()
	d, ok := fsys.flights[key(peerID, rel)]
	return d, ok
}

// warnCut says that a listing was cut at the limit, once per directory
// (a cut listing fetched again after its cache lifetime is not news).
func (fsys *filesys) warnCut(peerName, peerID, rel string, limit int) {
	if fsys.cutWarned.Contains(key(peerID, rel)) {
		fsys.log.Debug("directory listing cut again", "peer", peerName, "path", "/"+rel, "shown", limit)
		return
	}
	fsys.cutWarned.Add(key(peerID, rel), struct{}{})
	fsys.log.Warn("directory listing cut: the peer lists more entries than --max-listing allows",
		"peer", peerName, "path", "/"+rel, "shown", limit)
}

// prefetchSubdirs starts background fetches of the uncached listings of
// d's subdirectories, while the prefetch credit lasts. Failures only mean
// nothing was cached.
func (fsys *filesys) prefetchSubdirs(peerID, rel string, d *dirListing, depth int) {
	if fsys.cache == nil || depth <= 0 {
		return
	}
	if _, done, _ := d.state(); !done {
		// Still arriving: look at its subdirectories once it is all here.
		go func() {
			if d.waitDone(fsys.ctx) == 0 && d.errorFree() {
				fsys.prefetchSubdirs(peerID, rel, d, depth)
			}
		}()
		return
	}
	var todo []string
	for i := range d.len() {
		e := d.at(i)
		if e.fileType() != syscall.S_IFDIR {
			continue
		}
		if len(todo) == prefetchMaxSubdirs {
			// A walk (grep -r, find, du) visits them in this order:
			// the first are ahead of it; a directory of hundreds
			// (.git/objects has 258) is not left out whole.
			break
		}
		crel := childRel(rel, e.name)
		if _, ok := fsys.cache.dir(peerID, crel); ok {
			continue
		}
		if fsys.prefetch.tooBig.Contains(key(peerID, crel)) {
			continue
		}
		todo = append(todo, crel)
	}
	if len(todo) == 0 {
		return
	}
	ctx := fsys.ctx
	go func() {
		for _, crel := range todo {
			select {
			case fsys.prefetchSem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if !fsys.prefetch.left() {
				<-fsys.prefetchSem
				fsys.log.Debug("prefetch credit spent; not prefetching further until listings are opened", "path", rel)
				return
			}
			go func() {
				defer func() { <-fsys.prefetchSem }()
				fsys.prefetchOne(ctx, peerID, crel, depth-1)
			}()
		}
	}()
}

// speculateListing starts fetching rel's listing while a lookup asks the
// peer what rel is: a walk (ls -lR, find) opens a directory right after
// looking it up, and then finds its listing a round trip closer. For a
// file the OPENDIR fails and nothing is cached. It takes a slot of the
// listing prefetch only when one is free, and only while credit is left.
func (fsys *filesys) speculateListing(peerID, rel string) {
	if fsys.cache == nil || fsys.prefetch.tooBig.Contains(key(peerID, rel)) {
		return
	}
	select {
	case fsys.prefetchSem <- struct{}{}:
	default:
		return // listings are being fetched ahead already
	}
	if !fsys.prefetch.left() {
		<-fsys.prefetchSem
		return
	}
	go func() {
		defer func() { <-fsys.prefetchSem }()
		fsys.prefetchOne(fsys.ctx, peerID, rel, 0)
	}()
}

// prefetchOne fetches one listing in the background (paying credit as it
// reads); with depth left, it goes on with the listing's subdirectories.
func (fsys *filesys) prefetchOne(ctx context.Context, peerID, rel string, depth int) {
	if _, ok := fsys.cache.dir(peerID, rel); ok {
		return
	}
	k := key(peerID, rel)
	fsys.flightMu.Lock()
	if _, busy := fsys.flights[k]; busy {
		fsys.flightMu.Unlock()
		return
	}
	if _, ok := fsys.cache.dir(peerID, rel); ok {
		// A flight ended since the look above.
		fsys.flightMu.Unlock()
		return
	}
	// Never more than a user's listing shows (--max-listing): what a
	// prefetch caches is served as the listing.
	d := newBgListing(peerID, rel, min(prefetchMaxEntries, fsys.opts.MaxListing), fsys.prefetch.spend)
	fsys.flights[k] = d
	fsys.flightMu.Unlock()
	// The peer's limit is the user's: a reader may adopt the fetch.
	fsys.runFlight(ctx, k, d, fsys.opts.MaxListing)
	if d.errorFree() {
		fsys.prefetchSubdirs(peerID, rel, d, depth)
	}
}
