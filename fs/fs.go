//go:build !windows

// Package fs is dsftp's FUSE file system: one directory per live peer
// under the mount root, each showing that peer's share read-only through
// the SFTP session pool.
//
// The root follows the peer registry and never touches the network; a
// peer's directory talks to that peer only, under the pool's deadlines,
// so a frozen peer cannot block the root or the other peers.
package fs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dsftp/dsftp/peers/pool"
)

// filesys is the state shared by all nodes.
type filesys struct {
	opts  Options
	owner owner
	log   *slog.Logger
	cache *cache
	start time.Time

	flightMu    sync.Mutex
	flights     map[string]*dirListing       // listings being fetched, by key(peer, rel)
	cutWarned   *lru.Cache[string, struct{}] // directories whose cut listing was reported
	prefetchSem chan struct{}                // bounds background listing fetches
	prefetch    *prefetchBudget
	pf          *prefetcher     // sibling prefetch; nil when off
	inodes      *inodeBudget    // bounds the inodes held for the kernel
	relist      *relister       // lists a directory again after lookups miss (relist.go)
	ctx         context.Context // ends at unmount; stops prefetching
	// lookups counts the kernel's LOOKUPs of peers' names: `ls -l`
	// should need none where READDIRPLUS described the entries.
	lookups atomic.Int64
}

func (fsys *filesys) logErr(op, rel string, err error, errno syscall.Errno) {
	switch {
	case errno == syscall.ENOENT, errno == syscall.EINTR, errno == syscall.EACCES, errno == syscall.ENOTSUP:
		fsys.log.Debug(op, "path", rel, "err", err)
	case errors.Is(err, pool.ErrUnreachable):
		// The pool reported the peer gone once, with the cause; each
		// operation that meets it says so with its errno.
		fsys.log.Debug(op+" failed", "path", rel, "err", err)
	default:
		fsys.log.Warn(op+" failed", "path", rel, "err", err)
	}
}

// Mount is a mounted dsftp file system.
type Mount struct {
	Dir    string
	fstype string       // fuse.<subtype>
	auto   *autoUnmount // set with auto_unmount
	server *fuse.Server
	root   *rootNode
	cancel context.CancelFunc
	done   chan struct{}
	// detached: unmounted lazily, so the kernel lets go of the file
	// system only once its last user does.
	detached bool
}

// New mounts the file system at dir and starts following the registry.
func New(dir string, opts Options) (*Mount, error) {
	if opts.Registry == nil || opts.Pool == nil {
		return nil, errors.New("fs: Registry and Pool are required")
	}
	ctx, cancel := context.WithCancel(context.Background())
	root := newRoot(ctx, opts)
	fsys := root.fsys
	opts = fsys.opts // with the defaults filled in
	ttl := max(opts.AttrTTL, 0)
	mo := &fusefs.Options{
		MountOptions: fuse.MountOptions{
			FsName: cmp.Or(opts.FsName, "dsftp"),
			Name:   cmp.Or(opts.Subtype, "dsftp"),
			// ro: the kernel refuses writes itself (EROFS); nosuid and
			// nodev: a peer must not be able to serve setuid binaries or
			// device nodes; default_permissions: the kernel checks modes,
			// saving an ACCESS round trip per check.
			Options:    mountFlags(opts),
			AllowOther: opts.AllowOther || opts.AllowRoot,
			// Large reads: fewer, bigger FUSE requests feed the read-ahead.
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// The kernel caches "no xattrs" after the first ENOSYS, so ls -l
			// costs no xattr request per file.
			DisableXAttrs:        true,
			EnableSymlinkCaching: true,
			// The kernel's own choice between READDIR and READDIRPLUS:
			// attributes only for listings whose entries are then looked
			// at (ls -l, the first page of any listing). A bare listing
			// (ls -f, find, a file manager's first paint) then creates no
			// inode per entry: 10,000 entries in about half the time.
			ExtraCapabilities: fuse.CAP_READDIRPLUS_AUTO,
			MaxBackground:     64,
			// Synchronous reads: the kernel's read-ahead asks for the next
			// 128 KiB from the reading process itself instead of queueing
			// background requests. Our own read-ahead has the data ready,
			// so nothing is lost, and far fewer wake-ups of FUSE and Go
			// threads happen per byte (measured on loopback: client CPU
			// per GiB -8%, the server's -10%, throughput +5%). Synchronous
			// requests can also be interrupted (Ctrl-C), background ones
			// cannot.
			SyncRead:    true,
			DirectMount: true,
			// Read-only at the mount too, not only in the superblock,
			// as fusermount3 makes it: mount(8) and findmnt show "ro".
			DirectMountFlags: directMountFlags,
			Debug:            opts.Debug,
		},
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		UID:             fsys.owner.uid,
		GID:             fsys.owner.gid,
	}
	server, au, err := serve(dir, root, mo, opts)
	if err != nil {
		cancel()
		return nil, explainMountError(dir, err, opts)
	}
	m := &Mount{Dir: dir, fstype: "fuse." + mo.Name, server: server, auto: au, root: root, cancel: cancel, done: make(chan struct{})}
	go root.fsys.inodes.run(ctx)
	go func() {
		defer close(m.done)
		root.follow(ctx)
	}()
	return m, nil
}

// newRoot is the mount root over the file system's shared state, with
// the defaults of opts filled in; ctx ends its background work.
func newRoot(ctx context.Context, opts Options) *rootNode {
	if opts.AttrTTL == 0 {
		opts.AttrTTL = DefaultAttrTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MaxListing <= 0 {
		opts.MaxListing = DefaultMaxListing
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ttl := max(opts.AttrTTL, 0)
	fsys := &filesys{opts: opts, owner: newOwner(opts), log: opts.Logger, start: time.Now(),
		cache:   newCache(opts.CacheSize, max(opts.MaxListing, opts.CacheSize), ttl),
		flights: map[string]*dirListing{}, prefetchSem: make(chan struct{}, prefetchParallel),
		prefetch: newPrefetchBudget(), cutWarned: newCutWarned(), ctx: ctx,
		inodes: newInodeBudget(opts.CacheSize), relist: newRelister()}
	fsys.pf = newPrefetcher(fsys, opts.PrefetchMemory)
	return &rootNode{fsys: fsys, children: map[string]string{}, leaving: map[string]string{}}
}

// Unmount unmounts (lazily if busy) and stops following the registry.
func (m *Mount) Unmount() error {
	m.cancel()
	// go-fuse's Unmount waits for its request loops after the kernel let
	// go; bound that wait so shutdown never hangs.
	done := make(chan error, 1)
	go func() {
		if m.auto != nil {
			done <- m.auto.unmount(m.Dir)
			return
		}
		done <- m.server.Unmount()
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(unmountTimeout):
		err = fmt.Errorf("unmount did not finish within %v", unmountTimeout)
	}
	if err != nil && isMountedAs(m.Dir, m.fstype) {
		// A shell sitting in the mount keeps it busy: detach it instead.
		if derr := detach(m.Dir); derr == nil {
			err = nil
			m.detached = true
		}
	}
	<-m.done
	if !isMountedAs(m.Dir, m.fstype) {
		return nil
	}
	return err
}

// Wait blocks until the file system is unmounted (also from outside,
// e.g. fusermount3 -u).
func (m *Mount) Wait() { m.server.Wait() }

// unmountTimeout bounds go-fuse's unmount before it is detached instead,
// and unmountWait the wait for its request loops after: together they
// keep a stop under 2 s.
const (
	unmountTimeout = time.Second
	unmountWait    = 500 * time.Millisecond
)

// FlushCaches forgets the cached attributes and listings, so the next
// look at any peer's file asks the peer (the kernel keeps the entries it
// looked up for at most AttrTTL).
func (m *Mount) FlushCaches() { m.root.fsys.cache.purge() }

// Run serves until ctx ends, then closes the pool and unmounts, or until the file system is
// unmounted from outside (fusermount3 -u), which is no error.
func (m *Mount) Run(ctx context.Context) error {
	unmounted := make(chan struct{})
	go func() {
		m.Wait()
		close(unmounted)
	}()
	log := m.root.fsys.log
	if ready := m.root.fsys.opts.Ready; ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		log.Info("unmounting", "mountpoint", m.Dir)
		m.root.fsys.pf.logStats()
		// The pool's owner closes it when ctx ends too; closing it first
		// here fails the requests still waiting on a peer at once, which
		// go-fuse's unmount waits for.
		m.root.fsys.opts.Pool.Close()
		if err := m.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", m.Dir, err)
		}
		if m.detached {
			// Its loops end when the last user lets go, which may be
			// never while a shell sits in it.
			log.Info("unmounted lazily: the mount was busy; it goes away once nothing uses it", "mountpoint", m.Dir)
			return nil
		}
		select {
		case <-unmounted:
		case <-time.After(unmountWait):
		}
	case <-unmounted:
		log.Info("unmounted from outside", "mountpoint", m.Dir)
	}
	return nil
}

// mountFlags are the options passed to the kernel (or fusermount3).
func mountFlags(opts Options) []string {
	o := []string{"ro", "nosuid", "nodev", "default_permissions"}
	if opts.AutoUnmount {
		o = append(o, "auto_unmount")
	}
	return o
}

// serve mounts root at dir as fusefs.Mount does, with allow_root checked
// in front of the node file system.
func serve(dir string, root fusefs.InodeEmbedder, mo *fusefs.Options, opts Options) (*fuse.Server, *autoUnmount, error) {
	raw := fusefs.NewNodeFS(root, mo)
	if opts.AllowRoot {
		raw = rootOnly{RawFileSystem: raw, owner: uint32(os.Getuid())}
	}
	mopts := mo.MountOptions
	fdPath := dir
	var au *autoUnmount
	if opts.AutoUnmount {
		// The kernel does not know auto_unmount: only fusermount3,
		// which stays behind to unmount, does.
		mopts.DirectMount = false
		var err error
		if fdPath, au, err = mountAutoUnmount(dir, &mopts); err != nil {
			return nil, nil, err
		}
	}
	server, err := fuse.NewServer(raw, fdPath, &mopts)
	if err != nil {
		if au != nil {
			_ = au.unmount(dir)
		}
		return nil, nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, nil, err
	}
	return server, au, nil
}
