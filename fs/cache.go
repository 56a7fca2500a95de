package fs

import (
	"hash/fnv"
	"os"
	"sort"
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
}

// dirListing is a cached directory listing, sorted by name.
type dirListing struct {
	entries []fuse.DirEntry
	names   map[string]struct{}
}

// cache holds attributes and listings for AttrTTL, bounded in size. It is
// filled from READDIR replies so that listing a directory costs one round
// trip, not one per file. A nil *cache caches nothing.
type cache struct {
	attrs *expirable.LRU[string, attrEntry]
	dirs  *expirable.LRU[string, *dirListing]
}

func newCache(size int, ttl time.Duration) *cache {
	if ttl <= 0 || size <= 0 {
		return nil
	}
	dirs := size / 16
	if dirs < 64 {
		dirs = 64
	}
	return &cache{
		attrs: expirable.NewLRU[string, attrEntry](size, nil, ttl),
		dirs:  expirable.NewLRU[string, *dirListing](dirs, nil, ttl),
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
		c.attrs.Add(key(peerID, rel), e)
	}
}

func (c *cache) dir(peerID, rel string) (*dirListing, bool) {
	if c == nil {
		return nil, false
	}
	return c.dirs.Get(key(peerID, rel))
}

func (c *cache) putDir(peerID, rel string, d *dirListing) {
	if c != nil {
		c.dirs.Add(key(peerID, rel), d)
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

// toAttr converts remote attributes: write bits, setuid/setgid/sticky
// are cleared (the mount is read-only and nosuid) and the owner is the
// mounting user.
func toAttr(fi os.FileInfo, uid, gid uint32, out *fuse.Attr) {
	var mode uint32
	if st, ok := fi.Sys().(*sftp.FileStat); ok && st.Mode != 0 {
		mode = st.Mode
		out.Atime = uint64(st.Atime)
	} else {
		mode = fromFileMode(fi.Mode())
	}
	mode &^= 0o7222
	if mode&syscall.S_IFMT == 0 {
		mode |= syscall.S_IFREG
	}
	out.Mode = mode
	size := fi.Size()
	if size < 0 {
		size = 0
	}
	out.Size = uint64(size)
	out.Blocks = (out.Size + 511) / 512
	mt := fi.ModTime()
	out.Mtime = uint64(mt.Unix())
	out.Mtimensec = uint32(mt.Nanosecond())
	out.Ctime, out.Ctimensec = out.Mtime, out.Mtimensec
	if out.Atime == 0 {
		out.Atime = out.Mtime
	}
	out.Nlink = 1
	out.Uid, out.Gid = uid, gid
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
