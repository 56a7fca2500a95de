//go:build !windows

package fs

import (
	"context"
	"sync"
	"syscall"

	"github.com/dsftp/dsftp/peers"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootNode is the mount root: one persistent child directory per live
// peer. go-fuse answers Lookup and Readdir from the children, so nothing
// here touches the network.
type rootNode struct {
	fusefs.Inode
	readOnly
	fsys *filesys

	// mu guards children, the names the mount shows: Lookup and Readdir
	// answer from it, not from the Inode tree. go-fuse links the inode a
	// Lookup returns into the tree after Lookup returns, so a Lookup that
	// races sync's RmChild can put a departed peer back in the tree;
	// children stays right, and the next sync removes the straggler.
	mu sync.Mutex
	// children maps display names to peer IDs; only sync writes it.
	children map[string]string
	// leaving maps the names taken out of children whose kernel entries
	// are still being dropped (notify) to their peer IDs: Readdir lists
	// them until then, so a peer no longer listed is no longer found
	// either (thousands of departures take a while to tell the kernel).
	leaving map[string]string
	// sorted is the Readdir answer, built on demand after changes.
	sorted []fuse.DirEntry
	// seq is the registry change that children reflects.
	seq uint64
	// removed are the names the last sync took away: the next sync checks
	// them for stragglers.
	removed []string
}

var (
	_ fusefs.NodeOnAdder    = (*rootNode)(nil)
	_ fusefs.NodeGetattrer  = (*rootNode)(nil)
	_ fusefs.NodeStatfser   = (*rootNode)(nil)
	_ fusefs.NodeSetattrer  = (*rootNode)(nil)
	_ fusefs.NodeMkdirer    = (*rootNode)(nil)
	_ fusefs.NodeCreater    = (*rootNode)(nil)
	_ fusefs.NodeUnlinker   = (*rootNode)(nil)
	_ fusefs.NodeRmdirer    = (*rootNode)(nil)
	_ fusefs.NodeRenamer    = (*rootNode)(nil)
	_ fusefs.NodeSymlinker  = (*rootNode)(nil)
	_ fusefs.NodeLinker     = (*rootNode)(nil)
	_ fusefs.NodeMknoder    = (*rootNode)(nil)
	_ fusefs.NodeReaddirer  = (*rootNode)(nil)
	_ fusefs.NodeLookuper   = (*rootNode)(nil)
	_ fusefs.NodeOpendirer  = (*rootNode)(nil)
	_ fusefs.NodeAccesser   = (*rootNode)(nil)
	_ fusefs.NodeGetxattrer = (*rootNode)(nil)
)

// OnAdd fills the root before the mount becomes visible.
func (r *rootNode) OnAdd(ctx context.Context) { r.resync(ctx, false) }

// follow applies registry changes until ctx ends.
func (r *rootNode) follow(ctx context.Context) {
	ch, stop := r.fsys.opts.Registry.Watch()
	defer stop()
	r.sync(ctx) // changes between OnAdd and Watch
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			r.sync(ctx)
		}
	}
}

// sync applies the registry's changes since the last sync, at a cost
// proportional to them (not to the number of peers), and tells the kernel
// about the names that appeared or went away. A root too far behind the
// registry's journal lists everything again.
func (r *rootNode) sync(ctx context.Context) {
	changes, last, ok := r.fsys.opts.Registry.Changes(r.seqNow())
	if !ok {
		r.resync(ctx, true)
		return
	}
	if len(changes) == 0 {
		r.dropStragglers(nil)
		return
	}
	var changed, removed []string
	r.mu.Lock()
	for _, c := range changes {
		if c.Removed {
			if r.children[c.Name] != c.ID {
				continue
			}
			r.RmChild(c.Name)
			delete(r.children, c.Name)
			r.leaving[c.Name] = c.ID
			removed = append(removed, c.Name)
			r.fsys.log.Info("peer left", "peer", c.Name)
		} else {
			r.addLocked(ctx, c.Name, c.ID)
		}
		changed = append(changed, c.Name)
	}
	r.sorted = nil
	r.seq = last
	r.mu.Unlock()
	r.forgetGone(changes)
	r.dropStragglers(removed)
	r.notify(changed)
}

func (r *rootNode) seqNow() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// addLocked shows peer id as name.
func (r *rootNode) addLocked(ctx context.Context, name, id string) {
	if old, ok := r.children[name]; ok && old == id {
		return
	}
	n := &node{fsys: r.fsys, peerID: id}
	child := r.NewPersistentInode(ctx, n, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoOf(id, "")})
	r.AddChild(name, child, true)
	r.children[name] = id
	source := ""
	if e, ok := r.fsys.opts.Registry.ByID(id); ok {
		source = e.Source
		if w, ok := r.fsys.opts.Pool.(warmer); ok {
			w.Warm(e.Peer)
		}
	}
	r.fsys.log.Info("peer joined", "peer", name, "source", source)
}

// warmer is a Remote that can connect to a peer ahead of its first
// request (the pool: Pool.Warm), so the first listing of a peer that
// joined a while ago costs only the listing.
type warmer interface{ Warm(peers.Peer) }

// forgetGone closes the pooled connections of peers that left for good
// (not those that only changed their name).
func (r *rootNode) forgetGone(changes []peers.NameChange) {
	for _, c := range changes {
		if !c.Removed {
			continue
		}
		if _, live := r.fsys.opts.Registry.ByID(c.ID); !live {
			r.fsys.opts.Pool.Forget(c.ID)
		}
	}
}

// dropStragglers removes from the inode tree the names a racing Lookup
// put back (see mu), among those the previous sync removed.
func (r *rootNode) dropStragglers(now []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range r.removed {
		if _, ok := r.children[name]; !ok && r.GetChild(name) != nil {
			r.RmChild(name)
		}
	}
	r.removed = now
}

// resync makes the children match the full registry listing: at start,
// and when the journal no longer reaches back to the last sync.
func (r *rootNode) resync(ctx context.Context, notify bool) {
	list, seq := r.fsys.opts.Registry.ListSeq()
	want := make(map[string]peers.Entry, len(list))
	liveIDs := make(map[string]bool, len(list))
	for _, e := range list {
		want[e.DisplayName] = e
		liveIDs[e.ID] = true
	}
	var changed []string
	r.mu.Lock()
	for name, id := range r.children {
		if e, ok := want[name]; ok && e.ID == id {
			continue
		}
		r.RmChild(name)
		delete(r.children, name)
		if notify {
			r.leaving[name] = id
		}
		changed = append(changed, name)
		if !liveIDs[id] {
			r.fsys.opts.Pool.Forget(id)
		}
		r.fsys.log.Info("peer left", "peer", name)
	}
	// Stragglers a racing Lookup put back into the tree (see mu).
	for name := range r.Children() {
		if _, ok := r.children[name]; !ok {
			r.RmChild(name)
		}
	}
	for _, e := range list {
		if _, ok := r.children[e.DisplayName]; ok {
			continue
		}
		r.addLocked(ctx, e.DisplayName, e.ID)
		changed = append(changed, e.DisplayName)
	}
	r.sorted = nil
	r.seq = seq
	r.removed = nil
	r.mu.Unlock()
	if notify {
		r.notify(changed)
	}
}

// notify drops the kernel's cached entries of the changed names, then
// the names that left (see leaving) and the kernel's cached root listing.
func (r *rootNode) notify(changed []string) {
	for _, name := range changed {
		// Drops a cached (possibly negative) dentry; ENOENT just means
		// the kernel had none.
		if errno := r.NotifyEntry(name); errno != 0 && errno != syscall.ENOENT {
			r.fsys.log.Debug("notify entry", "name", name, "errno", errno)
		}
	}
	r.mu.Lock()
	for _, name := range changed {
		if _, ok := r.leaving[name]; ok {
			delete(r.leaving, name)
			r.sorted = nil
		}
	}
	r.mu.Unlock()
	if len(changed) > 0 {
		_ = r.NotifyContent(0, 0)
	}
}

// Lookup answers from the children only.
func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	r.mu.Lock()
	id, ok := r.children[name]
	r.mu.Unlock()
	if !ok {
		return nil, syscall.ENOENT
	}
	ch := r.GetChild(name)
	if ch == nil {
		return nil, syscall.ENOENT
	}
	n, ok := ch.Operations().(*node)
	if !ok || n.peerID != id {
		return nil, syscall.ENOENT
	}
	n.peerRootAttr(&out.Attr)
	return ch, 0
}

// Opendir and Readdir list "." and "..", then the children, sorted.
func (r *rootNode) Opendir(ctx context.Context) syscall.Errno { return 0 }

func (r *rootNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	r.mu.Lock()
	if r.sorted == nil {
		es := make([]fuse.DirEntry, 0, len(r.children)+len(r.leaving))
		for name, id := range r.children {
			es = append(es, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inoOf(id, "")})
		}
		for name, id := range r.leaving {
			if _, back := r.children[name]; !back {
				es = append(es, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inoOf(id, "")})
			}
		}
		sortEntries(es)
		dots := dotEntries(rootIno, rootIno)
		r.sorted = append(dots[:], es...)
	}
	// Readdir streams never write to the slice; a later change replaces
	// r.sorted rather than modifying it.
	es := r.sorted
	r.mu.Unlock()
	return fusefs.NewListDirStream(es), 0
}

func (r *rootNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.owner.dirAttr(&out.Attr)
	t := uint64(r.fsys.start.Unix())
	out.Mtime, out.Ctime, out.Atime = t, t, t
	out.Blksize = 4096
	return 0
}

// Access: with default_permissions the kernel checks modes itself.
func (r *rootNode) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }

// Getxattr: the root has no extended attributes.
func (r *rootNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, errNoXattr
}

// Statfs reports an empty, read-only file system without asking any peer.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}
