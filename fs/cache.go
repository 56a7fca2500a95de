//go:build !windows

package fs

import (
	"hash/fnv"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/pkg/sftp"
)

// attrEntry is a cached answer for one (peer, path): attributes, or an
// errno (ENOENT) for a negative entry.
type attrEntry struct {
	attr  fuse.Attr
	errno syscall.Errno
	at    time.Time // when it was fetched (set by putAttr)
}

// cache holds attributes and listings for AttrTTL, bounded in size: at
// most size attribute entries (answers of LSTAT), and listings holding at
// most dirBudget entries in total (a few huge listings evict the others
// rather than pile up). A listing keeps the attributes of its entries
// itself (filesys.attrOf), so listing a directory costs one round trip,
// not one per file, and a big listing does not churn the attribute
// entries. A nil *cache caches nothing.
type cache struct {
	attrs *expirable.LRU[string, attrEntry]
	dirs  *expirable.LRU[string, *dirListing]

	dirMu      sync.Mutex // serialises putDir's add-then-evict
	dirBudget  int64
	dirEntries atomic.Int64 // entries in cached listings
}

func newCache(size int, dirBudget int, ttl time.Duration) *cache {
	if ttl <= 0 || size <= 0 {
		return nil
	}
	dirs := size / 16
	if dirs < 64 {
		dirs = 64
	}
	c := &cache{
		attrs:     expirable.NewLRU[string, attrEntry](size, nil, ttl),
		dirBudget: int64(max(dirBudget, 1)),
	}
	c.dirs = expirable.NewLRU(dirs, func(_ string, d *dirListing) {
		c.dirEntries.Add(-int64(d.len()))
	}, ttl)
	return c
}

// purge empties the cache.
func (c *cache) purge() {
	if c != nil {
		c.attrs.Purge()
		c.dirs.Purge() // the eviction callback keeps dirEntries right
	}
}

func key(peerID, rel string) string { return peerID + "\x00" + rel }

func (c *cache) attr(peerID, rel string) (attrEntry, bool) {
	if c == nil {
		return attrEntry{}, false
	}
	return c.attrs.Get(key(peerID, rel))
}

func (c *cache) putAttr(peerID, rel string, e attrEntry) {
	if c != nil {
		e.at = time.Now()
		c.attrs.Add(key(peerID, rel), e)
	}
}

func (c *cache) dir(peerID, rel string) (*dirListing, bool) {
	if c == nil {
		return nil, false
	}
	return c.dirs.Get(key(peerID, rel))
}

// putDir caches d, evicting the least recently used listings while the
// total number of cached entries exceeds the budget. A listing larger
// than the whole budget is not cached, nor is a prefetched one (fetched
// ahead, nobody opened it) that would push out others: a guess never
// pushes out what someone listed.
func (c *cache) putDir(peerID, rel string, d *dirListing) {
	if c == nil || int64(d.len()) > c.dirBudget {
		return
	}
	k := key(peerID, rel)
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if d.prefetched.Load() && c.dirEntries.Load()+int64(d.len()) > c.dirBudget {
		return
	}
	// Add replaces an existing value without calling the eviction
	// callback: account for the old one here.
	c.dirs.Remove(k)
	c.dirs.Add(k, d)
	c.dirEntries.Add(int64(d.len()))
	for c.dirEntries.Load() > c.dirBudget {
		if _, _, ok := c.dirs.RemoveOldest(); !ok {
			break
		}
	}
}

// inoOf gives every (peer, path) a stable inode number, so find and du
// see the same file as the same file across lookups.
func inoOf(peerID, rel string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(peerID))
	h.Write([]byte{0})
	h.Write([]byte(rel))
	ino := h.Sum64()
	if ino < 2 {
		ino += 2 // 1 is the mount root
	}
	return ino
}

// toAttr converts remote attributes: the mode as owner.mode shows it,
// owned by the mount's owner.
func toAttr(fi os.FileInfo, own owner, out *fuse.Attr) {
	if st, ok := fi.Sys().(*sftp.FileStat); ok && st.Mode != 0 {
		statToAttr(st, own, out)
		return
	}
	mt := fi.ModTime()
	setAttr(fromFileMode(fi.Mode()), fi.Size(), uint64(mt.Unix()), uint32(mt.Nanosecond()), 0, own, out)
}

// statToAttr is toAttr for the raw attributes of a listing entry.
func statToAttr(st *sftp.FileStat, own owner, out *fuse.Attr) {
	setAttr(st.Mode, int64(min(st.Size, 1<<63-1)), uint64(st.Mtime), 0, uint64(st.Atime), own, out)
}

func setAttr(mode uint32, size int64, mtime uint64, mtimeNsec uint32, atime uint64, own owner, out *fuse.Attr) {
	if mode&syscall.S_IFMT == 0 {
		mode |= syscall.S_IFREG
	}
	out.Mode = mode&syscall.S_IFMT | own.mode(mode&0o7777)
	if size < 0 {
		size = 0
	}
	out.Size = uint64(size)
	out.Blocks = (out.Size + 511) / 512
	out.Mtime = mtime
	out.Mtimensec = mtimeNsec
	out.Ctime, out.Ctimensec = out.Mtime, out.Mtimensec
	out.Atime = atime
	if out.Atime == 0 {
		out.Atime = out.Mtime
	}
	out.Nlink = 1
	out.Uid, out.Gid = own.uid, own.gid
	out.Blksize = 128 << 10
}

func fromFileMode(m os.FileMode) uint32 {
	mode := uint32(m.Perm())
	switch {
	case m.IsDir():
		mode |= syscall.S_IFDIR
	case m&os.ModeSymlink != 0:
		mode |= syscall.S_IFLNK
	case m&os.ModeNamedPipe != 0:
		mode |= syscall.S_IFIFO
	case m&os.ModeSocket != 0:
		mode |= syscall.S_IFSOCK
	case m&os.ModeCharDevice != 0:
		mode |= syscall.S_IFCHR
	case m&os.ModeDevice != 0:
		mode |= syscall.S_IFBLK
	default:
		mode |= syscall.S_IFREG
	}
	return mode
}

func sortEntries(es []fuse.DirEntry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
}
