package policy

import (
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
	// as many, about 160 bytes each on the heap (5 MiB when full).
	maxVerdicts = 32768
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

// verdictCache remembers verdicts, at most maxVerdicts: when the current
// generation is full it becomes the old one and the older is dropped. A
// hit does not move a verdict, so listing a directory of up to
// maxVerdicts files again and again reads nothing (moving hits to the
// current generation would drop part of the old one on every listing
// of more than maxVerdicts/2 files).
type verdictCache struct {
	settle time.Duration

	mu       sync.Mutex
	cur, old map[verdictKey]verdict

	scans atomic.Int64 // content scans done, for tests and benchmarks
}

func newVerdictCache() *verdictCache {
	return &verdictCache{settle: verdictSettle, cur: map[verdictKey]verdict{}}
}

// get returns the remembered verdict for fi.
func (c *verdictCache) get(fi os.FileInfo) (verdict, bool) {
	k, ok := keyOf(fi)
	if !ok {
		return verdict{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	return v, ok
}

// put remembers v for fi, scanned at the time scanned, unless fi changed
// too recently to tell a later rewrite from it.
func (c *verdictCache) put(fi os.FileInfo, v verdict, scanned time.Time) {
	k, ok := keyOf(fi)
	if !ok || scanned.Sub(time.Unix(0, max(k.mtime, k.ctime))) < c.settle {
		return
	}
	c.mu.Lock()
	c.putLocked(k, v)
	c.mu.Unlock()
}

func (c *verdictCache) putLocked(k verdictKey, v verdict) {
	if len(c.cur) >= maxVerdicts/2 {
		c.old, c.cur = c.cur, make(map[verdictKey]verdict, maxVerdicts/2)
	}
	c.cur[k] = v
}
