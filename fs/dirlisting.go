//go:build !windows

package fs

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers/pool"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/pkg/sftp"
)

// dirEntry is one entry of a listing with the attributes the peer listed
// it with, raw: 40 bytes besides the name. The listing is the only copy
// of a listed entry's attributes, so memory grows with the entries
// listed, not with an attribute cache's full-size records.
type dirEntry struct {
	name  string
	size  uint64
	mode  uint32 // SFTP mode: type and permission bits
	mtime uint32
	atime uint32
}

// attr fills out with e's attributes as the mount shows them.
func (e *dirEntry) attr(own owner, ino uint64, out *fuse.Attr) {
	st := sftp.FileStat{Size: e.size, Mode: e.mode, Mtime: e.mtime, Atime: e.atime}
	statToAttr(&st, own, out)
	out.Ino = ino
}

// fileType is e's type bits (S_IFREG when the peer sent none).
func (e *dirEntry) fileType() uint32 {
	if t := e.mode & syscall.S_IFMT; t != 0 {
		return t
	}
	return syscall.S_IFREG
}

// Entries are stored in chunks of chunkLen: a growing listing never
// copies what it holds (a slice that doubles would briefly hold a big
// listing one and a half times), and readers keep reading chunks while
// new ones are added.
const (
	chunkBits = 12
	chunkLen  = 1 << chunkBits
)

// dirListing is a directory listing in the order the peer sends it. It is
// shown while it is fetched: add appends every reply's entries as they
// arrive and wakes the readers, finish ends it. What it holds is never
// changed, so readers use it without copying.
type dirListing struct {
	peerID, rel string
	start       time.Time // when the fetch began: the age of its attributes

	mu        sync.Mutex
	grew      chan struct{} // closed (and replaced) by add and finish
	chunks    [][]dirEntry
	n         int
	done      bool
	errno     syscall.Errno
	truncated bool // the peer had more entries than the limit
	gaveUp    bool // a prefetch stopped: too big, or no credit left
	skipped   int  // names no local path can hold
	// bg: fetched in the background (prefetch), paying credit for every
	// reply and giving up past bgLimit entries, until someone opens the
	// directory and adopts the fetch (bg false: it goes on as theirs).
	bg      bool
	bgLimit int
	spend   func(n int) bool // the credit a background fetch pays
	spent   int              // credit spent
	refused refusal          // why add refused the background fetch's reply
	// seen holds every name's hash while the listing is fetched, to drop
	// a name the peer lists twice; finish drops it.
	seen map[uint64]int32

	// prefetched: fetched in the background and not yet opened by
	// anyone; the first opendir gives its prefetch credit back.
	prefetched atomic.Bool

	// Orders of a finished listing, computed on first use: by name (for
	// lookups and the sibling prefetch) and by inode (the sibling
	// prefetch). byX[j] is the entry at position j, xPos[i] the position
	// of entry i.
	nameOnce         sync.Once
	byName, namePos  []int32
	inoOnce          sync.Once
	byIno, inoPosIdx []int32
}

// seed hashes names for the repeat check: random per process, so a peer
// cannot choose names that collide.
var seed = maphash.MakeSeed()

// refusal is why a background fetch stopped.
type refusal int

const (
	notRefused refusal = iota
	refusedTooBig
	refusedNoCredit
)

func newDirListing(peerID, rel string) *dirListing {
	return &dirListing{peerID: peerID, rel: rel, start: time.Now(),
		grew: make(chan struct{}), seen: map[uint64]int32{}}
}

// newBgListing is a listing fetched in the background: spend pays for
// every reply, and more than limit entries make it give up.
func newBgListing(peerID, rel string, limit int, spend func(int) bool) *dirListing {
	d := newDirListing(peerID, rel)
	d.bg, d.bgLimit, d.spend = true, limit, spend
	return d
}

// adopt turns a background fetch still running into a user's: it no
// longer pays credit or gives up at bgLimit. It returns the credit spent
// so far (to be given back), or false when the fetch is not in the
// background any more or has already been refused a reply (it ends
// given up).
func (d *dirListing) adopt() (spent int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bg {
		return 0, !d.gaveUp && d.refused == notRefused
	}
	if d.done || d.refused != notRefused {
		return 0, false
	}
	d.bg = false
	return d.spent, true
}

// background reports whether the listing is (still) a background fetch.
func (d *dirListing) background() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bg
}

// add appends a reply's entries, skipping names no local path can hold
// and names listed before. It reports false once the listing has ended:
// the fetch's connection may still deliver after a deadline failed it.
func (d *dirListing) add(es []pool.DirEntry) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done || d.refused != notRefused {
		return false
	}
	if d.bg {
		// Decided under the lock, so adopt sees either a fetch that
		// goes on or one that was refused.
		switch {
		case d.n+len(es) > d.bgLimit:
			d.refused = refusedTooBig
			return false
		case !d.spend(len(es)):
			d.refused = refusedNoCredit
			return false
		}
		d.spent += len(es)
	}
	for i := range es {
		name := es[i].Name
		if name == "" || len(name) > maxNameBytes || strings.ContainsAny(name, "/\x00") {
			d.skipped++
			continue
		}
		if d.repeatLocked(name) {
			continue
		}
		if d.n == len(d.chunks)<<chunkBits {
			d.chunks = append(d.chunks, make([]dirEntry, 0, chunkLen))
		}
		a := &es[i].Attrs
		c := &d.chunks[len(d.chunks)-1]
		*c = append(*c, dirEntry{name: name, size: a.Size, mode: a.Mode, mtime: a.Mtime, atime: a.Atime})
		d.n++
	}
	close(d.grew)
	d.grew = make(chan struct{})
	return true
}

// repeatLocked reports whether name was listed before, and remembers it.
// Two names with the same 64-bit hash are told apart by comparing them;
// the second of two such names is then not checked for repeats itself,
// which at worst shows a name twice.
func (d *dirListing) repeatLocked(name string) bool {
	h := maphash.String(seed, name)
	if i, ok := d.seen[h]; ok {
		if d.entryLocked(int(i)).name == name {
			return true
		}
		return false
	}
	d.seen[h] = int32(d.n)
	return false
}

func (d *dirListing) entryLocked(i int) *dirEntry { return &d.chunks[i>>chunkBits][i&(chunkLen-1)] }

// finish ends the listing (errno 0: complete or truncated).
func (d *dirListing) finish(truncated, gaveUp bool, errno syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	d.done, d.truncated, d.gaveUp, d.errno = true, truncated, gaveUp, errno
	d.seen = nil
	close(d.grew)
}

// wait blocks until the listing holds more than i entries or has ended,
// or ctx ends (EINTR). It returns the entries held and whether the
// listing has ended, with its errno.
func (d *dirListing) wait(ctx context.Context, i int) (n int, done bool, errno syscall.Errno) {
	for {
		d.mu.Lock()
		n, done, errno, grew := d.n, d.done, d.errno, d.grew
		d.mu.Unlock()
		if n > i || done {
			return n, done, errno
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return n, false, syscall.EINTR
		}
	}
}

// waitDone blocks until the listing has ended or ctx ends (EINTR).
func (d *dirListing) waitDone(ctx context.Context) syscall.Errno {
	for {
		_, done, errno := d.wait(ctx, int(^uint(0)>>1))
		if done || errno != 0 {
			return errno
		}
	}
}

// state returns the entries held and whether the listing has ended.
func (d *dirListing) state() (n int, done bool, truncated bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.done, d.truncated
}

// complete reports whether the listing ended without error and without
// being cut: then a name it lacks does not exist.
func (d *dirListing) complete() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done && d.errno == 0 && !d.truncated && !d.gaveUp
}

// errorFree reports whether the listing ended and holds what the peer
// listed (complete or cut at the limit).
func (d *dirListing) errorFree() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done && d.errno == 0 && !d.gaveUp
}

// len is the number of entries held.
func (d *dirListing) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// at returns entry i (i below what wait or len reported).
func (d *dirListing) at(i int) *dirEntry {
	d.mu.Lock()
	c := d.chunks[i>>chunkBits]
	d.mu.Unlock()
	return &c[i&(chunkLen-1)]
}

// ino is the inode number of the listing's entry named name.
func (d *dirListing) ino(name string) uint64 { return inoOf(d.peerID, childRel(d.rel, name)) }

// fuseEntry is entry i as READDIR shows it.
func (d *dirListing) fuseEntry(i int) fuse.DirEntry {
	e := d.at(i)
	return fuse.DirEntry{Name: e.name, Mode: e.fileType(), Ino: d.ino(e.name)}
}

// childRel is path.Join(rel, name) for a name without slashes, "." or "..".
func childRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// find returns the entry named name of a finished listing (binary search
// in name order: 4 bytes per entry, not a map of the names).
func (d *dirListing) find(name string) (*dirEntry, int, bool) {
	n, done, _ := d.state()
	if !done || n == 0 {
		return nil, -1, false
	}
	d.byNameOnce()
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.at(int(d.byName[m])).name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n {
		i := int(d.byName[lo])
		if e := d.at(i); e.name == name {
			return e, i, true
		}
	}
	return nil, -1, false
}

// arriving finds name in a listing still being fetched, among the
// entries that have arrived.
func (d *dirListing) arriving(name string) (*dirEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, ok := d.seen[maphash.String(seed, name)] // seen is nil once done
	if !ok {
		return nil, false
	}
	// Entries never move once added (chunks are allocated whole).
	e := d.entryLocked(int(i))
	return e, e.name == name
}

// has reports whether a finished listing holds name.
func (d *dirListing) has(name string) bool {
	_, _, ok := d.find(name)
	return ok
}

// index is the index of name in a finished listing, or -1.
func (d *dirListing) index(name string) int {
	_, i, _ := d.find(name)
	return i
}

// byNameOnce computes the name order of a finished listing once.
func (d *dirListing) byNameOnce() {
	d.nameOnce.Do(func() {
		n := d.len()
		d.byName = identity(n)
		names := make([]string, n) // headers only: the strings are shared
		for i := range names {
			names[i] = d.at(i).name
		}
		slices.SortFunc(d.byName, func(a, b int32) int { return strings.Compare(names[a], names[b]) })
		d.namePos = inverse(d.byName)
	})
}

// byInoOnce computes the inode order of a finished listing once.
func (d *dirListing) byInoOnce() {
	d.inoOnce.Do(func() {
		n := d.len()
		inos := make([]uint64, n)
		for i := range inos {
			inos[i] = d.ino(d.at(i).name)
		}
		d.byIno = identity(n)
		slices.SortFunc(d.byIno, func(a, b int32) int { return cmp.Or(cmp.Compare(inos[a], inos[b]), cmp.Compare(a, b)) })
		d.inoPosIdx = inverse(d.byIno)
	})
}

func identity(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

func inverse(order []int32) []int32 {
	out := make([]int32, len(order))
	for j, i := range order {
		out[i] = int32(j)
	}
	return out
}
