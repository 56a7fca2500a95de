//go:build !windows

package fs

import (
	"context"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Listing again after lookups miss. A directory's listing answers the
// lookups of its names for AttrTTL. A program that reads a big directory
// and then looks at every name (du, cp -r, tar, a script's listdir and
// stat) can outlast it, and each later name would then cost a round
// trip to the peer: over the internet, 10,000 names 5 minutes. So the
// names looked up in vain in a directory whose listing has expired are
// counted, and past one per relistShare entries of its last listing (at
// least relistMin) the directory is listed again, in the background, as
// a user's listing: one listing costs less than the round trips it
// saves, and a lone stat in a huge directory lists nothing.
const (
	relistMin   = 16
	relistShare = 256
	relistDirs  = 1024 // directories whose last listing size is remembered
)

// relister remembers the size of recent listings and the lookups that
// missed since.
type relister struct {
	mu   sync.Mutex
	dirs *lru.Cache[string, *relistState]
}

type relistState struct {
	size   int // entries of the directory's last listing
	misses int // lookups the peer answered since it expired
}

func newRelister() *relister {
	c, _ := lru.New[string, *relistState](relistDirs) // fails only for a size <= 0
	return &relister{dirs: c}
}

// listed notes a listing of rel just fetched whole (or cut), with n
// entries.
func (r *relister) listed(peerID, rel string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dirs.Add(key(peerID, rel), &relistState{size: n})
}

// missed counts a lookup of a name in dir that its listing could not
// answer, and reports whether dir is to be listed again now; known is
// false for a directory not listed whole lately.
func (r *relister) missed(peerID, dir string) (again, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.dirs.Get(key(peerID, dir))
	if !ok {
		return false, false
	}
	st.misses++
	if st.misses < max(relistMin, st.size/relistShare) {
		return false, true
	}
	st.misses = 0
	return true, true
}

// lookupMissed is called before the peer is asked for the attributes of
// a name in dir. A directory not listed lately is fetched in the
// background, as a prefetch: a program that looks at names it did not
// list (git status, make, a compiler's includes, git's loose objects)
// looks at their siblings next, and the listing answers those, as its
// entries arrive. A directory whose listing has expired is listed again
// once enough names missed since (see relistMin).
func (fsys *filesys) lookupMissed(peerID, dir string) {
	if fsys.cache == nil {
		return
	}
	if _, ok := fsys.cache.dir(peerID, dir); ok {
		return // fresh: the name is not in it, or the lookup is its own
	}
	again, known := fsys.relist.missed(peerID, dir)
	if !known {
		fsys.speculateListing(peerID, dir)
		return
	}
	if !again {
		return
	}
	go func() {
		ctx, cancel := context.WithCancel(fsys.ctx)
		defer cancel()
		if d, errno := fsys.listDir(ctx, peerID, dir); errno == 0 {
			// listDir returns at the first entries; the fetch goes on
			// and caches the listing when it ends.
			_ = d.waitDone(ctx)
		}
	}()
}
