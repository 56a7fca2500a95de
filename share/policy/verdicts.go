package policy

import (
	"hash/maphash"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Listings leave out files that hold a key, which takes a read of each
// regular file listed. The verdicts are remembered by the file's
// identity and state, so a repeated listing (FUSE lists again when its
// cache expires; rsync and find list everything) reads nothing.
const (
	// maxVerdicts bounds the remembered files: two generations of half
	// as many, about 53 bytes each on the heap (13 MiB when full; see
	// BenchmarkVerdictCacheMemory), so a directory of a quarter of a
	// million small files lists again without a read.
	maxVerdicts = 1 << 18
	// minGeneration is how long a full generation is kept before the
	// next one replaces it. A directory of more files than the cache
	// holds would otherwise push out, on every listing, the verdicts the
	// next listing needs first, and be read whole each time; while the
	// cache is full and young, new verdicts are not remembered instead,
	// so such a listing reads only the files beyond the cache's size.
	minGeneration = time.Minute
	// verdictSettle is how old a file's last change must be for its
	// verdict to be remembered: within the timestamps' granularity a
	// rewrite of the same size leaves the state unchanged.
	verdictSettle = 2 * time.Second
)

// verdictKey identifies a file's content: device and inode, size, and
// the modification and status-change times (a write changes both).
type verdictKey struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

// verdict is what a content scan found: why the file holds a key (or
// ""), and for a file small enough to be a copy of a dsftp secret, the
// length and the first 64 bits of the SHA-256 of its trimmed content
// (the secrets may change after the scan; see secretSet.copyOfSum).
type verdict struct {
	why  string
	tlen int32 // -1: too big to be a copy
	sum  uint64
}

// packedVerdict is a verdict as the cache holds it: the reason as an
// index into the cache's few distinct reasons (0: none).
type packedVerdict struct {
	sum  uint64
	tlen int32
	why  uint16
}

// maxReasons bounds the distinct reasons remembered (the key scan has a
// handful); a verdict with a reason beyond it is not remembered.
const maxReasons = 1 << 10

// verdictCache remembers verdicts, at most max: when the current
// generation is full it becomes the old one and the older is dropped
// (but not while the current one is younger than minGen). A hit does not
// move a verdict, so listing a directory of up to max files again and
// again reads nothing (moving hits to the current generation would drop
// part of the old one on every listing of more than max/2 files).
//
// Verdicts are keyed by a 64-bit hash of the file's verdictKey, with a
// seed random per process, so nobody can choose files whose keys
// collide; a look-up finds another file's verdict by chance with odds
// of at most 2^-46 (2^18 hashes of 64 bits held), which could at worst
// list a file holding a key: every open is checked again anyway
// (secretGuard.check).
type verdictCache struct {
	settle time.Duration
	max    int
	minGen time.Duration
	seed   maphash.Seed

	mu       sync.Mutex
	cur, old map[uint64]packedVerdict
	curStart time.Time // when cur began
	reasons  []string  // index i+1 is reasons[i]
	reasonID map[string]uint16

	scans atomic.Int64 // content scans done, for tests and benchmarks
}

func newVerdictCache() *verdictCache {
	return &verdictCache{settle: verdictSettle, max: maxVerdicts, minGen: minGeneration,
		seed: maphash.MakeSeed(), cur: map[uint64]packedVerdict{}, curStart: time.Now(),
		reasonID: map[string]uint16{}}
}

// get returns the remembered verdict for fi.
func (c *verdictCache) get(fi os.FileInfo) (verdict, bool) {
	k, ok := keyOf(fi)
	if !ok {
		return verdict{}, false
	}
	h := maphash.Comparable(c.seed, k)
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.cur[h]
	if !ok {
		p, ok = c.old[h]
	}
	if !ok {
		return verdict{}, false
	}
	v := verdict{tlen: p.tlen, sum: p.sum}
	if p.why != 0 {
		v.why = c.reasons[p.why-1]
	}
	return v, true
}

// put remembers v for fi, scanned at the time scanned, unless fi changed
// too recently to tell a later rewrite from it.
func (c *verdictCache) put(fi os.FileInfo, v verdict, scanned time.Time) {
	k, ok := keyOf(fi)
	if !ok || scanned.Sub(time.Unix(0, max(k.mtime, k.ctime))) < c.settle {
		return
	}
	c.mu.Lock()
	c.putLocked(k, v, scanned)
	c.mu.Unlock()
}

// putLocked remembers v for k at time now, unless the cache is full and
// its current generation younger than minGen.
func (c *verdictCache) putLocked(k verdictKey, v verdict, now time.Time) {
	p := packedVerdict{sum: v.sum, tlen: v.tlen}
	if v.why != "" {
		id, ok := c.reasonID[v.why]
		if !ok {
			if len(c.reasons) >= maxReasons {
				return
			}
			c.reasons = append(c.reasons, v.why)
			id = uint16(len(c.reasons))
			c.reasonID[v.why] = id
		}
		p.why = id
	}
	if len(c.cur) >= c.max/2 {
		if len(c.old) > 0 && now.Sub(c.curStart) < c.minGen {
			return
		}
		c.old, c.cur, c.curStart = c.cur, make(map[uint64]packedVerdict, c.max/2), now
	}
	c.cur[maphash.Comparable(c.seed, k)] = p
}
