package fs

import (
	"context"
	"path"
	"syscall"

	"github.com/dsftp/dsftp/peers/pool"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Directory prefetch: when the user opens a directory, the listings of its
// subdirectories are fetched in the background (a few at a time, one level
// only), so a recursive walk (ls -lR, find, du, cp -r) finds the next
// listing waiting instead of paying a round trip per directory.
const (
	prefetchMaxSubdirs = 256 // directories with more subdirectories are not prefetched
	prefetchParallel   = 4   // listings fetched at once in the background
)

// flight is a listing being fetched; concurrent askers share it.
type flight struct {
	done  chan struct{}
	d     *dirListing
	errno syscall.Errno
}

// listDir returns the listing of rel on the peer, from the cache, from a
// fetch already in flight, or from the peer. A fetched listing fills the
// attribute cache for every entry.
func (fsys *filesys) listDir(ctx context.Context, peerID, rel string) (*dirListing, syscall.Errno) {
	if d, ok := fsys.cache.dir(peerID, rel); ok {
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
	if inFlight {
		select {
		case <-f.done:
			return f.d, f.errno
		case <-ctx.Done():
			return nil, syscall.EINTR
		}
	}
	f.d, f.errno = fsys.fetchDir(ctx, peerID, rel)
	fsys.flightMu.Lock()
	delete(fsys.flights, k)
	fsys.flightMu.Unlock()
	close(f.done)
	return f.d, f.errno
}

func (fsys *filesys) fetchDir(ctx context.Context, peerID, rel string) (*dirListing, syscall.Errno) {
	e, ok := fsys.opts.Registry.ByID(peerID)
	if !ok {
		return nil, syscall.ENOENT
	}
	list, err := fsys.opts.Pool.ReadDir(ctx, e.Peer, rel)
	if err != nil {
		errno := pool.Errno(err)
		fsys.logErr("readdir", rel, err, errno)
		return nil, errno
	}
	d := &dirListing{entries: make([]fuse.DirEntry, 0, len(list)), names: make(map[string]struct{}, len(list))}
	for _, fi := range list {
		name := fi.Name()
		if name == "." || name == ".." || name == "" {
			continue
		}
		crel := path.Join(rel, name)
		var a fuse.Attr
		toAttr(fi, fsys.opts.UID, fsys.opts.GID, &a)
		a.Ino = inoOf(peerID, crel)
		fsys.cache.putAttr(peerID, crel, attrEntry{attr: a})
		d.entries = append(d.entries, fuse.DirEntry{Name: name, Mode: a.Mode, Ino: a.Ino})
		d.names[name] = struct{}{}
	}
	sortEntries(d.entries)
	fsys.cache.putDir(peerID, rel, d)
	return d, 0
}

// prefetchSubdirs starts background fetches of the uncached listings of
// d's subdirectories. Failures only mean nothing was cached.
func (fsys *filesys) prefetchSubdirs(peerID, rel string, d *dirListing) {
	if fsys.cache == nil {
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
		if _, ok := fsys.cache.dir(peerID, crel); !ok {
			todo = append(todo, crel)
		}
	}
	if len(todo) == 0 {
		return
	}
	go func() {
		for _, crel := range todo {
			fsys.prefetchSem <- struct{}{}
			go func() {
				defer func() { <-fsys.prefetchSem }()
				fsys.listDir(context.Background(), peerID, crel)
			}()
		}
	}()
}
