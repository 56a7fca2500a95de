//go:build !windows

package fs

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers/pool"
	"github.com/hanwen/go-fuse/v2/fuse"
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
	prefetchMaxSubdirs = 256 // directories with more subdirectories are not prefetched
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

// flight is a listing being fetched; concurrent askers share it.
type flight struct {
	done     chan struct{}
	d        *dirListing
	errno    syscall.Errno
	prefetch bool // a background fetch: it may give up on a big listing
}

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
// A fetched listing fills the attribute cache for every entry.
func (fsys *filesys) listDir(ctx context.Context, peerID, rel string) (*dirListing, syscall.Errno) {
	for {
		if d, ok := fsys.cache.dir(peerID, rel); ok {
			fsys.opened(d)
			return d, 0
		}
		k := key(peerID, rel)
		fsys.flightMu.Lock()
		f, inFlight := fsys.flights[k]
		if !inFlight {
			f = &flight{done: make(chan struct{})}
			fsys.flights[k] = f
		}
		fsys.flightMu.Unlock()
		if !inFlight {
			fsys.runFlight(ctx, k, f, peerID, rel, fsys.opts.MaxListing)
			if f.d != nil {
				fsys.opened(f.d)
			}
			return f.d, f.errno
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, syscall.EINTR
		}
		if f.d == nil && f.prefetch && f.errno != syscall.ETIMEDOUT {
			// The prefetch gave up (a big listing, no credit) or failed
			// (a speculative fetch may race a change on the peer): fetch
			// it ourselves. A timeout is not tried twice.
			continue
		}
		if f.d != nil {
			fsys.opened(f.d)
		}
		return f.d, f.errno
	}
}

// opened gives back the prefetch credit of a listing someone opens.
func (fsys *filesys) opened(d *dirListing) {
	if d.prefetched.CompareAndSwap(true, false) {
		fsys.prefetch.give(len(d.entries))
	}
}

// runFlight fetches for flight f and ends it.
func (fsys *filesys) runFlight(ctx context.Context, k string, f *flight, peerID, rel string, limit int) {
	f.d, f.errno = fsys.fetchDir(ctx, peerID, rel, limit, f.prefetch)
	fsys.flightMu.Lock()
	delete(fsys.flights, k)
	fsys.flightMu.Unlock()
	close(f.done)
}

// fetchDir reads at most limit entries of rel. A prefetch that hits the
// limit gives up (nil listing, no error) and remembers the directory as
// too big; a user's listing is cut there, with a warning.
func (fsys *filesys) fetchDir(ctx context.Context, peerID, rel string, limit int, prefetch bool) (*dirListing, syscall.Errno) {
	e, ok := fsys.opts.Registry.ByID(peerID)
	if !ok {
		return nil, syscall.ENOENT
	}
	// A background fetch pays for every entry it reads; what it keeps
	// comes back when its listing is opened, what it drops only by the
	// slow refill (so a peer's big listings cannot keep it busy).
	var take func(int) bool
	spent := 0
	if prefetch {
		take = func(n int) bool {
			if !fsys.prefetch.spend(n) {
				return false
			}
			spent += n
			return true
		}
	}
	list, truncated, err := fsys.opts.Pool.ReadDirBudget(ctx, e.Peer, rel, limit, take)
	if prefetch && errors.Is(err, pool.ErrListingBudget) {
		fsys.log.Debug("prefetch credit spent during a listing; not prefetching further until listings are opened", "peer", e.DisplayName, "path", rel)
		return nil, 0
	}
	if err != nil {
		errno := pool.Errno(err)
		if prefetch {
			// Quiet: a speculative fetch of a file's listing fails, and a
			// reader who opens the directory gets the error itself.
			fsys.log.Debug("prefetch readdir", "path", rel, "err", err)
		} else {
			fsys.logErr("readdir", rel, err, errno)
		}
		return nil, errno
	}
	if prefetch && truncated {
		fsys.prefetch.tooBig.Add(key(peerID, rel), struct{}{})
		fsys.log.Debug("not prefetching a big directory", "peer", e.DisplayName, "path", rel, "more_than", limit)
		return nil, 0
	}
	if truncated {
		fsys.log.Warn("directory listing cut: the peer lists more entries than --max-listing allows",
			"peer", e.DisplayName, "path", "/"+rel, "shown", limit)
	}
	d := &dirListing{entries: make([]fuse.DirEntry, 0, len(list)), truncated: truncated}
	skipped := 0
	for i := range list {
		name := list[i].Name
		if name == "" || len(name) > maxNameBytes || strings.ContainsAny(name, "/\x00") {
			skipped++ // a name no local path can reach
			continue
		}
		crel := path.Join(rel, name)
		var a fuse.Attr
		statToAttr(&list[i].Attrs, fsys.owner, &a)
		a.Ino = inoOf(peerID, crel)
		fsys.cache.putAttr(peerID, crel, attrEntry{attr: a})
		d.entries = append(d.entries, fuse.DirEntry{Name: name, Mode: a.Mode, Ino: a.Ino})
	}
	if skipped > 0 {
		fsys.log.Warn("skipped listed names that cannot be file names here", "peer", e.DisplayName, "path", "/"+rel, "count", skipped)
	}
	sortEntries(d.entries)
	d.entries = dedupSorted(d.entries)
	if spent > len(d.entries) {
		fsys.prefetch.give(spent - len(d.entries)) // skipped and repeated names are not kept
	}
	d.prefetched.Store(prefetch)
	fsys.cache.putDir(peerID, rel, d)
	return d, 0
}

// dedupSorted drops repeated names (a peer may list a name twice; the
// kernel must see it once).
func dedupSorted(es []fuse.DirEntry) []fuse.DirEntry {
	out := es[:0]
	for i, e := range es {
		if i > 0 && e.Name == es[i-1].Name {
			continue
		}
		out = append(out, e)
	}
	return out
}

// prefetchSubdirs starts background fetches of the uncached listings of
// d's subdirectories, while the prefetch credit lasts. Failures only mean
// nothing was cached.
func (fsys *filesys) prefetchSubdirs(peerID, rel string, d *dirListing, depth int) {
	if fsys.cache == nil || depth <= 0 {
		return
	}
	var todo []string
	for _, e := range d.entries {
		if e.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue
		}
		if len(todo) == prefetchMaxSubdirs {
			return
		}
		crel := path.Join(rel, e.Name)
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
	f := &flight{done: make(chan struct{}), prefetch: true}
	fsys.flights[k] = f
	fsys.flightMu.Unlock()
	// Never more than a user's listing shows (--max-listing): what a
	// prefetch caches is served as the listing.
	fsys.runFlight(ctx, k, f, peerID, rel, min(prefetchMaxEntries, fsys.opts.MaxListing))
	if f.d != nil {
		fsys.prefetchSubdirs(peerID, rel, f.d, depth)
	}
}
