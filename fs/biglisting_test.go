//go:build linux

package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// fillDir puts n empty files big/f0000… on peer id.
func fillDir(fake *fakeRemote, id, dir string, n int) {
	for i := range n {
		fake.file(id, fmt.Sprintf("%s/f%05d", dir, i), nil)
	}
}

// waitingCtx closes asked when someone first asks for its Done channel,
// as a reader does when it starts to wait.
type waitingCtx struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.asked) })
	return c.Context.Done()
}

// TestNodeListingStreams: a listing is served as it arrives. The peer
// sends 300 of 1000 entries and then stops: opendir returns, and the 300
// are read through the handle while the peer still holds the rest; a
// reader waiting for the next gives up with EINTR when interrupted. Once
// the peer goes on, the rest follows, each name once.
func TestNodeListingStreams(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	fillDir(fake, id, "big", 1000)
	hold := fake.holdListing(id, "big", 300)
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute}, "alice")

	n := x.mustLookup("alice/big")
	fh, _, errno := n.OpendirHandle(x.ctx, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	h := fh.(*dirHandle)
	seen := map[string]bool{}
	for range 2 + 300 {
		e, errno := h.Readdirent(x.ctx)
		if errno != 0 || e == nil {
			t.Fatalf("entry %d while the peer holds the rest: %v, %v", len(seen), e, errno)
		}
		seen[e.Name] = true
	}
	select {
	case <-hold.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer's listing never reached the hold")
	}
	// The lookup of big also fetched the peer's root (big alone).
	eventually(t, 10*time.Second, "the root's listing", func() bool {
		_, ok := x.root.fsys.cache.dir(id, "")
		return ok
	})
	if got := fake.listed.Load(); got != 1+300 {
		t.Fatalf("the peer sent %d entries before the hold, want the root's 1 and big's 300", got)
	}
	inner, cancel := context.WithCancel(x.ctx)
	defer cancel()
	ctx := &waitingCtx{Context: inner, asked: make(chan struct{})}
	go func() {
		select {
		case <-ctx.asked: // the reader waits for the next entry
			cancel()
		case <-inner.Done():
		}
	}()
	if e, errno := h.Readdirent(ctx); errno != syscall.EINTR {
		t.Fatalf("an interrupted read of an entry not yet sent: %v, %v; want EINTR", e, errno)
	}
	if fake.listed.Load() != 1+300 {
		t.Fatal("the peer went on without its hold released")
	}

	hold.let()
	for {
		e, errno := h.Readdirent(x.ctx)
		if errno != 0 {
			t.Fatal(errno)
		}
		if e == nil {
			break
		}
		if seen[e.Name] {
			t.Fatalf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
	}
	if len(seen) != 2+1000 || !seen["."] || !seen[".."] || !seen["f00000"] || !seen["f00999"] {
		t.Fatalf("%d names after the peer went on, want . and .. and 1000", len(seen))
	}
	if c := fake.count(opReadDir, id, "big"); c != 1 {
		t.Fatalf("%d READDIRs, want 1", c)
	}
}

// TestNodeCutListingCached: a listing cut at MaxListing is cached like a
// complete one (listing it again within AttrTTL costs no call, and its
// entries answer lookups and attributes without one), and the cut is
// reported once, also when the listing is fetched again after AttrTTL.
func TestNodeCutListingCached(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	fillDir(fake, id, "big", 250)
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute, MaxListing: 120, Logger: log}, "alice")

	// The lookup of big also starts a background fetch, which gives up
	// on a listing this big: that READDIR is not the listing's. It is
	// over before the count below begins.
	x.mustLookup("alice/big")
	eventually(t, 10*time.Second, "the background fetch of big to give up", func() bool {
		return strings.Contains(logs.String(), `msg="not prefetching a big directory"`)
	})
	first := 0
	for i := range 3 {
		es, errno := x.list("alice/big")
		if errno != 0 || len(es) != 120 {
			t.Fatalf("cut listing: %d entries, %v; want 120", len(es), errno)
		}
		if i == 0 {
			first = fake.count(opReadDir, id, "big")
		}
	}
	if c := fake.count(opReadDir, id, "big"); c != first {
		t.Fatalf("listing a cut directory again made %d more READDIRs, want none", c-first)
	}
	es, _ := x.list("alice/big")
	for _, e := range es {
		n := x.mustLookup("alice/big/" + e.Name)
		var out fuse.AttrOut
		if errno := n.Getattr(x.ctx, nil, &out); errno != 0 || out.Ino != e.Ino {
			t.Fatalf("getattr %s: %v, ino %d want %d", e.Name, errno, out.Ino, e.Ino)
		}
	}
	// big's own lookup asks the peer unless the root's listing, which
	// that lookup fetched, answered a later one first.
	if c := fake.total(opLstat, id); c > 1 {
		t.Fatalf("lookups of a cut listing's entries made %d LSTATs, want at most 1 (big itself)", c)
	}

	// After AttrTTL the listing is fetched again, and cut again, quietly.
	x2 := newTestFS(t, fake, Options{AttrTTL: 50 * time.Millisecond, MaxListing: 120, Logger: log}, "alice")
	x2.root.fsys.cutWarned = x.root.fsys.cutWarned // the same mount's memory
	if _, errno := x2.list("alice/big"); errno != 0 {
		t.Fatal(errno)
	}
	eventually(t, 10*time.Second, "the cut listing fetched again after AttrTTL", func() bool {
		_, errno := x2.list("alice/big")
		return errno == 0 && fake.count(opReadDir, id, "big") >= first+2
	})
	if got := strings.Count(logs.String(), "directory listing cut:"); got != 1 {
		t.Fatalf("the cut was reported %d times, want once:\n%s", got, logs.String())
	}
}

// TestNodeListingMemoryBound: a listing keeps its entries' attributes
// itself, so listing and looking up a directory far bigger than the
// attribute cache leaves that cache empty and asks the peer nothing more;
// READDIRPLUS describes (and so makes inodes for) entries only while the
// inodes stay within the budget of CacheSize inodes and its slack (nobody
// pushes the oldest out here); cached listings never hold more than their budget,
// and a listing pushed out is fetched again when asked.
func TestNodeListingMemoryBound(t *testing.T) {
	// a and b leave room for the peer's root (a and b), whose listing
	// the lookup of a fetches beside it: the budget holds one listing.
	const cacheSize, maxListing, entries = 50, 400, 398
	fake := newFakeRemote(t)
	id := peerID("alice")
	fillDir(fake, id, "a", entries)
	fillDir(fake, id, "b", entries)
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute, CacheSize: cacheSize, MaxListing: maxListing}, "alice")
	c := x.root.fsys.cache

	n := x.mustLookup("alice/a")
	fh, _, errno := n.OpendirHandle(x.ctx, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	h := fh.(*dirHandle)
	described := 0
	for i := 0; ; i++ {
		e, errno := h.Readdirent(x.ctx)
		if errno != 0 {
			t.Fatal(errno)
		}
		if e == nil {
			break
		}
		if e.Name == "." || e.Name == ".." {
			continue
		}
		// As go-fuse's READDIRPLUS does, right after each entry.
		var out fuse.EntryOut
		if in, errno := h.Lookup(x.ctx, e.Name, &out); errno == 0 {
			if in == nil || out.Ino != e.Ino || out.Mode&syscall.S_IFMT != syscall.S_IFREG {
				t.Fatalf("READDIRPLUS of %s: inode %v, attributes %+v", e.Name, in, out.Attr)
			}
			described++
		}
	}
	// The inode budget is CacheSize inodes, a's own among them, and a
	// quarter more while the oldest are being pushed out.
	if want := cacheSize + cacheSize/4 - 1; described != want {
		t.Fatalf("READDIRPLUS described %d entries, want the first %d (a's inode and theirs fill the budget of %d and its slack)", described, want, cacheSize)
	}
	for i := range entries {
		rel := fmt.Sprintf("alice/a/f%05d", i)
		n := x.mustLookup(rel)
		var out fuse.AttrOut
		if errno := n.Getattr(x.ctx, nil, &out); errno != 0 {
			t.Fatalf("getattr %s: %v", rel, errno)
		}
	}
	if got := c.attrs.Len(); got > 1 {
		t.Fatalf("the attribute cache holds %d entries after a listing's lookups, want at most 1 (a itself)", got)
	}
	if lst := fake.total(opLstat, id); lst > 1 {
		t.Fatalf("lookups answered by the listing made %d LSTATs, want at most 1 (a itself)", lst)
	}

	// Listing b pushes a out: the budget is max(MaxListing, CacheSize).
	if _, errno := x.list("alice/b"); errno != 0 {
		t.Fatal(errno)
	}
	if got := c.dirEntries.Load(); got > maxListing {
		t.Fatalf("cached listings hold %d entries, budget %d", got, maxListing)
	}
	if _, ok := c.dir(id, "a"); ok {
		t.Fatal("a's listing still cached beside b's, over the budget")
	}
	if _, errno := x.list("alice/a"); errno != 0 {
		t.Fatal(errno)
	}
	if got := fake.count(opReadDir, id, "a"); got != 2 {
		t.Fatalf("a listing pushed out was fetched %d times, want again (2)", got)
	}
	if got := c.dirEntries.Load(); got > maxListing {
		t.Fatalf("cached listings hold %d entries, budget %d", got, maxListing)
	}
}

// TestInProcessListingStreams: through the kernel, the first entries of a
// big listing reach a reader (getdents) while the peer still holds the
// rest; the rest follows once it goes on, and listing the directory again
// costs no call to the peer.
func TestInProcessListingStreams(t *testing.T) {
	testenv.RequireFUSE(t)
	const total, held = 3000, 500
	fake := newFakeRemote(t)
	alice := peerID("alice")
	fillDir(fake, alice, "big", total)
	hold := fake.holdListing(alice, "big", held)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice")
	mnt := t.TempDir()
	runInProcess(t, mnt, Options{Registry: reg, Pool: fake, AttrTTL: time.Minute})

	// Without streaming, the first names would wait for the hold: let it
	// go after a while so that fails an assertion instead of hanging.
	go func() {
		select {
		case <-time.After(10 * time.Second):
			hold.let()
		case <-t.Context().Done():
		}
	}()
	dir := filepath.Join(mnt, "alice", "big")
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// ReadDir(n) stops after n names; the kernel asks for them as the
	// reader's buffer needs them.
	first, err := f.ReadDir(100)
	if err != nil || len(first) != 100 {
		t.Fatalf("first names: %d, %v", len(first), err)
	}
	if got := fake.listed.Load(); got >= total {
		t.Fatalf("the first names reached the reader after the peer sent all %d", got)
	}
	select {
	case <-hold.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer's listing never reached the hold")
	}
	hold.let()
	rest, err := f.ReadDir(-1)
	if err != nil || len(first)+len(rest) != total {
		t.Fatalf("all names: %d, %v; want %d", len(first)+len(rest), err, total)
	}
	if names := dirNames(t, dir); len(names) != total {
		t.Fatalf("listing again: %d names, want %d", len(names), total)
	}
	if c := fake.count(opReadDir, alice, "big"); c != 1 {
		t.Fatalf("%d READDIRs, want 1", c)
	}
}

// TestInProcessInodeBudget: through the kernel, `ls -l` of a directory
// ten times the inode budget (CacheSize) ends with the mount holding at
// most the budget's inodes (the kernel is told to drop the oldest, and
// forgets them), every file's attributes right and answered from the
// listing, and a file pushed out is looked up again when asked.
func TestInProcessInodeBudget(t *testing.T) {
	testenv.RequireFUSE(t)
	const budget, total = 200, 2000
	fake := newFakeRemote(t)
	alice := peerID("alice")
	fillDir(fake, alice, "big", total)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice")
	mnt := t.TempDir()
	m := runInProcess(t, mnt, Options{Registry: reg, Pool: fake, AttrTTL: time.Minute, CacheSize: budget})

	dir := filepath.Join(mnt, "alice", "big")
	lsl := func() {
		t.Helper()
		names := dirNames(t, dir)
		if len(names) != total {
			t.Fatalf("listed %d names, want %d", len(names), total)
		}
		for _, name := range names {
			fi, err := os.Lstat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Size() != 0 {
				t.Fatalf("%s: mode %v, size %d; want an empty file", name, fi.Mode(), fi.Size())
			}
		}
	}
	lsl()
	inodes := m.root.fsys.inodes
	eventually(t, 15*time.Second, fmt.Sprintf("the mount to hold at most %d inodes", budget), func() bool {
		return inodes.count() <= budget
	})
	lsl()
	eventually(t, 15*time.Second, fmt.Sprintf("the mount to hold at most %d inodes after a second ls -l", budget), func() bool {
		return inodes.count() <= budget
	})
	if n := fake.total(opLstat, alice); n > 1 {
		t.Errorf("%d LSTATs reached the peer; want at most 1 (big itself): the listing answers the rest", n)
	}
	if n := fake.count(opReadDir, alice, "big"); n != 1 {
		t.Errorf("%d READDIRs; want 1", n)
	}
}

// TestInProcessBareListing: through the kernel, a bare listing (ls -f)
// gets names only and makes no inode per entry; `ls -l` after it gets
// every entry described by READDIRPLUS (the kernel's copy of the bare
// listing is dropped at its open), so it looks nothing up; and `ls -l`
// of a directory 2.5 times the inode budget, which looks at each
// getdents' entries before the next, finds them described too while the
// oldest are pushed out, and the budget holds. (The budget's slack, a
// quarter of it, is above what one getdents of ls's 128 KiB buffer
// lists, 3,277 names, as it is with the default budget.)
func TestInProcessBareListing(t *testing.T) {
	testenv.RequireFUSE(t)
	const total, budget, big = 3000, 16000, 40000
	fake := newFakeRemote(t)
	alice := peerID("alice")
	fillDir(fake, alice, "dir", total)
	fillDir(fake, alice, "big", big)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice")
	mnt := t.TempDir()
	m := runInProcess(t, mnt, Options{Registry: reg, Pool: fake, AttrTTL: time.Minute, CacheSize: budget})
	fsys := m.root.fsys

	ls := func(flag, dir string) int {
		t.Helper()
		out, err := exec.Command("ls", flag, filepath.Join(mnt, "alice", dir)).Output()
		if err != nil {
			t.Fatalf("ls %s %s: %v", flag, dir, err)
		}
		return strings.Count(string(out), "\n")
	}
	before := fsys.inodes.count()
	if got := ls("-f", "dir"); got != total+2 {
		t.Fatalf("ls -f: %d lines, want %d names and . and ..", got, total+2)
	}
	// The kernel asks for READDIRPLUS at the start of a listing (its
	// first getdents), names alone after it.
	if made := fsys.inodes.count() - before; made > total/2 {
		t.Fatalf("ls -f made %d inodes for %d entries: the bare listing was described whole", made, total)
	}
	dirNode := m.root.GetChild("alice").GetChild("dir").Operations().(*node)
	namesCached := func() bool {
		dirNode.mu.Lock()
		defer dirNode.mu.Unlock()
		return dirNode.namesCached
	}
	if !namesCached() {
		t.Fatal("after ls -f the kernel's copy of the listing holds names only, and the node does not know")
	}
	for i := range 2 {
		lookups := fsys.lookups.Load()
		if got := ls("-l", "dir"); got != total+1 {
			t.Fatalf("ls -l #%d: %d lines, want %d and the total", i+1, got, total+1)
		}
		if n := fsys.lookups.Load() - lookups; n > 1 {
			t.Errorf("ls -l #%d after ls -f looked up %d of %d entries; want none (READDIRPLUS describes them) but the directory itself", i+1, n, total)
		}
		// The second ls -l let the kernel keep the listing, all of it
		// with attributes: a third is served by the kernel alone.
		if namesCached() {
			t.Fatalf("after ls -l #%d the kernel's copy of the listing is taken for names only", i+1)
		}
	}

	lookups := fsys.lookups.Load()
	if got := ls("-l", "big"); got != big+1 {
		t.Fatalf("ls -l big: %d lines, want %d and the total", got, big+1)
	}
	// Names only past the budget would make it look up 24,000; a few
	// hundred pushed out before ls got to them are looked up.
	if n := fsys.lookups.Load() - lookups; n > big/10 {
		t.Errorf("ls -l of %d entries with an inode budget of %d looked up %d; want almost none", big, budget, n)
	}
	eventually(t, 15*time.Second, fmt.Sprintf("the mount to hold at most %d inodes", budget), func() bool {
		return fsys.inodes.count() <= budget
	})
	if n := fake.total(opLstat, alice); n > 2 {
		t.Errorf("%d LSTATs reached the peer; want at most 2 (dir and big): the listings answer the rest", n)
	}
}

// TestInProcessRelistAfterExpiry: a program that reads a directory and
// looks at its names only after the listing expired (AttrTTL) gets the
// directory listed again after a few lookups asked the peer, and the
// rest answered from the new listing, not one LSTAT per name.
func TestInProcessRelistAfterExpiry(t *testing.T) {
	testenv.RequireFUSE(t)
	const total, ttl = 3000, 500 * time.Millisecond
	fake := newFakeRemote(t)
	alice := peerID("alice")
	fillDir(fake, alice, "dir", total)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice")
	mnt := t.TempDir()
	runInProcess(t, mnt, Options{Registry: reg, Pool: fake, AttrTTL: ttl, CacheSize: 2 * total})

	dir := filepath.Join(mnt, "alice", "dir")
	names := dirNames(t, dir)
	if len(names) != total {
		t.Fatalf("listed %d names, want %d", len(names), total)
	}
	// As du does: relative to the directory's descriptor, opened before,
	// so the directory itself is not looked up again (that lookup would
	// fetch its listing beside it: speculateListing).
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The scenario: the listing and the kernel's entries expire before
	// the program looks at the names. Each lookup that reaches the peer
	// takes a round trip (here 1 ms, a near peer), so the program does
	// not outrun the listing asked for in the background.
	time.Sleep(ttl + 100*time.Millisecond)
	fake.lstatRTT.Store(int64(time.Millisecond))
	lstats := fake.total(opLstat, alice)
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(int(f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	asked := fake.total(opLstat, alice) - lstats
	// Listed again at least once, and never without relistMin lookups
	// missing first (under the race detector the lookups can outlast
	// the new listing too).
	if got, most := fake.count(opReadDir, alice, "dir"), 1+asked/relistMin; got < 2 || got > most {
		t.Errorf("%d READDIRs of dir with %d lookups asking the peer; want 2 to %d", got, asked, most)
	}
	// relistMin lookups go to the peer before the listing is asked for
	// again, a few more while it arrives; without it, every name would.
	if asked > total/4 {
		t.Errorf("%d of %d lookups after the listing expired went to the peer", asked, total)
	}
	t.Logf("%d of %d lookups after the listing expired went to the peer", asked, total)
}

// TestInProcessLookupFromArrivingListing: while a directory's listing is
// on its way (here held by the peer after its first 1,000 entries), a
// lookup of a name that has arrived is answered from it, not by a round
// trip of its own.
func TestInProcessLookupFromArrivingListing(t *testing.T) {
	testenv.RequireFUSE(t)
	const total, arrived, ttl = 3000, 1000, 500 * time.Millisecond
	fake := newFakeRemote(t)
	alice := peerID("alice")
	fillDir(fake, alice, "dir", total)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice")
	mnt := t.TempDir()
	runInProcess(t, mnt, Options{Registry: reg, Pool: fake, AttrTTL: ttl, CacheSize: 2 * total})

	dir := filepath.Join(mnt, "alice", "dir")
	names := dirNames(t, dir) // sorted: the fake lists them in reverse
	if len(names) != total {
		t.Fatalf("listed %d names, want %d", len(names), total)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(ttl + 100*time.Millisecond) // the listing expires

	hold := fake.holdListing(alice, "dir", arrived)
	listed := make(chan error, 1)
	go func() {
		// Another reader lists the directory again.
		g, err := os.Open(dir)
		if err == nil {
			_, err = g.Readdirnames(-1)
			g.Close()
		}
		listed <- err
	}()
	select {
	case <-hold.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the listing did not reach the peer")
	}
	lstats := fake.total(opLstat, alice)
	for _, name := range names[total-arrived:] {
		var st unix.Stat_t
		if err := unix.Fstatat(int(f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.total(opLstat, alice) - lstats; n > 0 {
		t.Errorf("%d of %d lookups of names the arriving listing holds reached the peer; want none", n, arrived)
	}
	close(hold.release)
	if err := <-listed; err != nil {
		t.Errorf("the other reader's listing: %v", err)
	}
}
