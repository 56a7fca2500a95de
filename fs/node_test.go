//go:build linux

package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/pool"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/pkg/sftp"
)

// These tests drive the file system's nodes over a fakeRemote, without a
// kernel mount (see testFS): they run under -short.

// TestNodeRootListsLivePeers: the root shows one directory per live peer,
// frozen or not, without a single call to any peer, and follows the
// registry: a peer that leaves is gone (and its connections forgotten),
// a new one appears.
func TestNodeRootListsLivePeers(t *testing.T) {
	fake := newFakeRemote(t)
	fake.file(peerID("alice"), "a.txt", []byte("a"))
	fake.peer(peerID("bob"))
	fake.freeze(peerID("carol"))
	x := newTestFS(t, fake, Options{}, "alice", "bob", "carol")

	if got, want := x.rootNames(), []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
		t.Fatalf("root lists %v, want %v", got, want)
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		n := x.mustLookup(name)
		var out fuse.AttrOut
		if errno := n.Getattr(x.ctx, nil, &out); errno != 0 {
			t.Fatalf("getattr %s: %v", name, errno)
		}
		if out.Mode != syscall.S_IFDIR|0o755 || out.Ino != inoOf(peerID(name), "") {
			t.Fatalf("%s: mode %o ino %d, want a 0755 directory with ino %d", name, out.Mode, out.Ino, inoOf(peerID(name), ""))
		}
	}
	var st fuse.StatfsOut
	if errno := x.root.Statfs(x.ctx, &st); errno != 0 || st.Bsize != 4096 {
		t.Fatalf("statfs /: %v %+v", errno, st)
	}
	if n := fake.total("", ""); n != 0 {
		t.Fatalf("listing and looking up the root made %d calls to peers, want none", n)
	}
	if _, errno := x.lookup("nobody"); errno != syscall.ENOENT {
		t.Fatalf("lookup of a name no peer has: %v, want ENOENT", errno)
	}

	x.reg.Remove(peerID("bob"))
	addPeers(x.reg, "dave")
	eventually(t, 10*time.Second, "the root follows the registry", func() bool {
		return slices.Equal(x.rootNames(), []string{"alice", "carol", "dave"})
	})
	if _, errno := x.lookup("bob"); errno != syscall.ENOENT {
		t.Fatalf("lookup of a peer that left: %v, want ENOENT", errno)
	}
	if got := fake.forgotten(); !slices.Equal(got, []string{peerID("bob")}) {
		t.Fatalf("forgotten peers %v, want bob's connections closed", got)
	}
}

// TestNodeFrozenPeerIsolated: while a frozen peer holds a listing of its
// directory, the root, the other peers' listings and reads all answer;
// the held listing ends with EINTR when the reader gives up, and with
// ETIMEDOUT at the remote's deadline, for listings, lookups and reads.
func TestNodeFrozenPeerIsolated(t *testing.T) {
	fake := newFakeRemote(t)
	fake.file(peerID("alice"), "a.txt", []byte("alice's"))
	fake.file(peerID("carol"), "c.txt", []byte("carol's"))
	fake.freeze(peerID("carol"))
	x := newTestFS(t, fake, Options{}, "alice", "carol")

	carol := x.mustLookup("carol")
	ctx, cancel := context.WithCancel(x.ctx)
	held := make(chan error, 1)
	go func() {
		_, _, errno := carol.OpendirHandle(ctx, 0)
		held <- errno
	}()
	eventually(t, 10*time.Second, "carol's listing reaches the frozen peer", func() bool { return fake.waiting.Load() > 0 })

	if got := x.rootNames(); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("root lists %v while carol is frozen", got)
	}
	if es, errno := x.list("alice"); errno != 0 || !slices.Equal(entryNames(es), []string{"a.txt"}) {
		t.Fatalf("alice's listing while carol is frozen: %v %v", entryNames(es), errno)
	}
	if b, errno := x.read("alice/a.txt"); errno != 0 || string(b) != "alice's" {
		t.Fatalf("alice's file while carol is frozen: %q %v", b, errno)
	}
	select {
	case err := <-held:
		t.Fatalf("carol's listing returned (%v) while carol is frozen", err)
	default:
	}
	cancel()
	if err := <-held; err != syscall.EINTR {
		t.Fatalf("carol's listing after the reader gave up: %v, want EINTR", err)
	}

	fake.setTimeout(100 * time.Millisecond)
	if _, errno := x.list("carol"); errno != syscall.ETIMEDOUT {
		t.Fatalf("listing of a frozen peer: %v, want ETIMEDOUT", errno)
	}
	if _, errno := x.lookup("carol/c.txt"); errno != syscall.ETIMEDOUT {
		t.Fatalf("lookup on a frozen peer: %v, want ETIMEDOUT", errno)
	}
	fake.thaw(peerID("carol"))
	n := x.mustLookup("carol/c.txt")
	fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatalf("open on carol once thawed: %v", errno)
	}
	fake.freeze(peerID("carol"))
	if _, errno := readAt(x.ctx, fh, make([]byte, 10), 0); errno != syscall.ETIMEDOUT {
		t.Fatalf("read on a frozen peer: %v, want ETIMEDOUT", errno)
	}
	fake.thaw(peerID("carol"))
	if b, errno := readAt(x.ctx, fh, make([]byte, 10), 0); errno != 0 || string(b) != "carol's" {
		t.Fatalf("read once thawed: %q %v", b, errno)
	}
}

// TestNodeDeadPeerFailsFast: an unreachable peer's directory fails with
// EHOSTUNREACH at the first answer of the remote, one call per request
// (the file system neither retries nor waits), and errors are not cached:
// the peer coming back is seen at once.
func TestNodeDeadPeerFailsFast(t *testing.T) {
	fake := newFakeRemote(t)
	fake.file(peerID("dave"), "d.txt", []byte("dave's"))
	fake.file(peerID("alice"), "a.txt", []byte("alice's"))
	fake.setDead(peerID("dave"), true)
	x := newTestFS(t, fake, Options{}, "alice", "dave")

	if _, errno := x.list("dave"); errno != syscall.EHOSTUNREACH {
		t.Fatalf("listing of a dead peer: %v, want EHOSTUNREACH", errno)
	}
	if n := fake.count(opReadDir, peerID("dave"), ""); n != 1 {
		t.Fatalf("one listing of a dead peer made %d calls, want 1", n)
	}
	if _, errno := x.lookup("dave/d.txt"); errno != syscall.EHOSTUNREACH {
		t.Fatalf("lookup on a dead peer: %v, want EHOSTUNREACH", errno)
	}
	if n := fake.count(opLstat, peerID("dave"), "d.txt"); n != 1 {
		t.Fatalf("one lookup on a dead peer made %d LSTATs, want 1", n)
	}
	if b, errno := x.read("alice/a.txt"); errno != 0 || string(b) != "alice's" {
		t.Fatalf("alice's file beside a dead peer: %q %v", b, errno)
	}
	fake.setDead(peerID("dave"), false)
	if b, errno := x.read("dave/d.txt"); errno != 0 || string(b) != "dave's" {
		t.Fatalf("dave's file once back: %q %v", b, errno)
	}
}

// TestNodeErrnos: the remote's errors reach the caller as the errnos
// pool.Errno gives them, for every operation; a missing name is cached
// as such; writes are refused with EROFS.
func TestNodeErrnos(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	faults := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"enoent", iofs.ErrNotExist, syscall.ENOENT},
		{"eacces", iofs.ErrPermission, syscall.EACCES},
		{"hostkey", &pool.HostKeyError{Peer: "alice", Addr: "192.0.2.1:22", Got: "SHA256:x"}, syscall.EACCES},
		{"etimedout", pool.ErrTimeout, syscall.ETIMEDOUT},
		{"deadline", context.DeadlineExceeded, syscall.ETIMEDOUT},
		{"eio", errors.New("connection lost"), syscall.EIO},
	}
	for _, f := range faults {
		fake.file(id, "lstat/"+f.name, []byte("x"))
		fake.fault(id, opLstat, "lstat/"+f.name, f.err)
		fake.dir(id, "readdir/"+f.name)
		fake.fault(id, opReadDir, "readdir/"+f.name, f.err)
		fake.file(id, "open/"+f.name, []byte("x"))
		fake.fault(id, opOpen, "open/"+f.name, f.err)
		fake.file(id, "read/"+f.name, []byte("x"))
		fake.fault(id, opRead, "read/"+f.name, f.err)
	}
	// A listing of lstat/ (a lookup starts one) would answer the lookups
	// of its entries: only LSTAT may.
	fake.fault(id, opReadDir, "lstat", errors.New("no listing here"))
	fake.put(id, "link", &fakeNode{mode: os.ModeSymlink | 0o777, target: "../elsewhere"})
	fake.put(id, "badlink", &fakeNode{mode: os.ModeSymlink | 0o777, target: "x"})
	fake.fault(id, opReadlink, "badlink", errors.New("broken pipe"))
	fake.dir(id, "nostatvfs")
	fake.fault(id, opStatVFS, "nostatvfs", &sftp.StatusError{Code: uint32(sftp.ErrSSHFxOpUnsupported)})
	fake.dir(id, "badstatvfs")
	fake.fault(id, opStatVFS, "badstatvfs", iofs.ErrPermission)
	x := newTestFS(t, fake, Options{}, "alice")

	for _, f := range faults {
		if _, errno := x.lookup("alice/lstat/" + f.name); errno != f.want {
			t.Errorf("lookup failing with %v: %v, want %v", f.err, errno, f.want)
		}
		if _, errno := x.list("alice/readdir/" + f.name); errno != f.want {
			t.Errorf("listing failing with %v: %v, want %v", f.err, errno, f.want)
		}
		if _, errno := x.read("alice/open/" + f.name); errno != f.want {
			t.Errorf("open failing with %v: %v, want %v", f.err, errno, f.want)
		}
		if b, errno := x.read("alice/read/" + f.name); errno != f.want || len(b) != 0 {
			t.Errorf("read failing with %v: %d bytes, %v; want no bytes and %v", f.err, len(b), errno, f.want)
		}
	}
	// A missing name is remembered: the second lookup asks nobody.
	for range 2 {
		if _, errno := x.lookup("alice/lstat/gone"); errno != syscall.ENOENT {
			t.Fatalf("lookup of a missing file: %v", errno)
		}
	}
	if n := fake.count(opLstat, id, "lstat/gone"); n != 1 {
		t.Fatalf("two lookups of a missing file made %d LSTATs, want 1", n)
	}

	if target, errno := x.mustLookup("alice/link").Readlink(x.ctx); errno != 0 || string(target) != "../elsewhere" {
		t.Fatalf("readlink: %q %v", target, errno)
	}
	if _, errno := x.mustLookup("alice/badlink").Readlink(x.ctx); errno != syscall.EIO {
		t.Fatalf("readlink failing: %v, want EIO", errno)
	}
	var st fuse.StatfsOut
	if errno := x.mustLookup("alice").Statfs(x.ctx, &st); errno != 0 || st.Blocks != 1000 || st.Bavail != 400 || st.NameLen != 255 {
		t.Fatalf("statfs: %v %+v", errno, st)
	}
	st = fuse.StatfsOut{}
	if errno := x.mustLookup("alice/nostatvfs").Statfs(x.ctx, &st); errno != 0 || st.Blocks != 0 || st.Bsize != 4096 {
		t.Fatalf("statfs unsupported by the peer: %v %+v, want an empty file system", errno, st)
	}
	if errno := x.mustLookup("alice/badstatvfs").Statfs(x.ctx, &st); errno != syscall.EACCES {
		t.Fatalf("statfs failing: %v, want EACCES", errno)
	}

	n := x.mustLookup("alice/open/enoent")
	for _, flags := range []uint32{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | syscall.O_TRUNC, syscall.O_WRONLY | syscall.O_APPEND} {
		if _, _, errno := n.Open(x.ctx, flags); errno != syscall.EROFS {
			t.Errorf("open with flags %#x: %v, want EROFS", flags, errno)
		}
	}
	dir := x.mustLookup("alice/readdir/eio")
	if _, _, errno := dir.Open(x.ctx, syscall.O_RDONLY); errno != syscall.EISDIR {
		t.Errorf("open of a directory: %v, want EISDIR", errno)
	}
	var eo fuse.EntryOut
	if _, errno := dir.Mkdir(x.ctx, "new", 0o755, &eo); errno != syscall.EROFS {
		t.Errorf("mkdir: %v, want EROFS", errno)
	}
	if errno := dir.Unlink(x.ctx, "x"); errno != syscall.EROFS {
		t.Errorf("unlink: %v, want EROFS", errno)
	}
	if _, _, _, errno := x.root.Create(x.ctx, "x", 0, 0o644, &eo); errno != syscall.EROFS {
		t.Errorf("create in the root: %v, want EROFS", errno)
	}
	if _, errno := dir.Getxattr(x.ctx, "user.x", nil); errno != errNoXattr {
		t.Errorf("getxattr: %v, want %v", errno, errNoXattr)
	}
}

// TestNodeListingFillsAttrCache: one listing answers the lookups and
// attributes of every entry and the lookups of names it lacks, without a
// further call, within AttrTTL; after it, a change on the peer shows.
// Modes are the peer's without setuid bits, under the umask.
func TestNodeListingFillsAttrCache(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	for i := range 50 {
		fake.file(id, fmt.Sprintf("d/f%02d", i), bytes.Repeat([]byte("x"), i))
	}
	fake.put(id, "d/suid", &fakeNode{mode: os.ModeSetuid | 0o777, data: []byte("#!")})
	fake.put(id, "d/sub", &fakeNode{mode: os.ModeDir | 0o777})
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute, Umask: 0o022}, "alice")

	es, errno := x.list("alice/d")
	// In the peer's order (the fake's is reversed), as it arrived.
	if errno != 0 || len(es) != 52 || es[0].Name != "suid" || es[51].Name != "f00" {
		t.Fatalf("listing: %d entries %v, %v", len(es), entryNames(es), errno)
	}
	for _, e := range es {
		n := x.mustLookup("alice/d/" + e.Name)
		var out fuse.AttrOut
		if errno := n.Getattr(x.ctx, nil, &out); errno != 0 {
			t.Fatalf("getattr %s: %v", e.Name, errno)
		}
		if out.Ino != e.Ino || out.Mode&syscall.S_IFMT != e.Mode&syscall.S_IFMT {
			t.Fatalf("%s: attributes %+v disagree with the listing's %+v", e.Name, out.Attr, e)
		}
		want := uint32(syscall.S_IFREG | 0o644)
		switch e.Name {
		case "suid":
			want = syscall.S_IFREG | 0o755
		case "sub":
			want = syscall.S_IFDIR | 0o755
		}
		if out.Mode != want {
			t.Fatalf("%s: mode %o, want %o", e.Name, out.Mode, want)
		}
	}
	if _, errno := x.lookup("alice/d/missing"); errno != syscall.ENOENT {
		t.Fatalf("lookup of a name the listing lacks: %v", errno)
	}
	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	if n := fake.total(opLstat, id); n > 1 {
		t.Fatalf("lookups after a listing made %d LSTATs, want at most 1 (of d itself)", n)
	}
	if n := fake.count(opReadDir, id, "d"); n != 1 {
		t.Fatalf("two listings within AttrTTL made %d READDIRs, want 1", n)
	}

	// With a short AttrTTL, a change on the peer shows once it passed.
	x = newTestFS(t, fake, Options{AttrTTL: 100 * time.Millisecond}, "alice")
	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	fake.change(id, "d/f10", []byte("changed on the peer"))
	n := x.mustLookup("alice/d/f10")
	eventually(t, 10*time.Second, "the change shows after AttrTTL", func() bool {
		var out fuse.AttrOut
		return n.Getattr(x.ctx, nil, &out) == 0 && out.Size == uint64(len("changed on the peer"))
	})
	if b, errno := x.read("alice/d/f10"); errno != 0 || string(b) != "changed on the peer" {
		t.Fatalf("changed file: %q %v", b, errno)
	}
}

// TestNodeListingLimits: a listing longer than MaxListing shows its
// first entries, also when fetched ahead, and does not answer lookups of
// the others; names no
// local path can hold are skipped, a repeated name shows once.
func TestNodeListingLimits(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	for i := range 8 {
		fake.file(id, fmt.Sprintf("big/f%d", i), []byte("x"))
	}
	fake.dir(id, "odd")
	fake.file(id, "odd/dup", []byte("x"))
	fake.peer(id).extra["odd"] = []pool.DirEntry{
		{Name: ""}, {Name: "a/b"}, {Name: "nul\x00"}, {Name: strings.Repeat("n", 256)},
		{Name: "dup", Attrs: sftp.FileStat{Mode: syscall.S_IFREG | 0o644}},
	}
	x := newTestFS(t, fake, Options{MaxListing: 5}, "alice")

	// A listing fetched ahead (as a lookup of big starts one) is held to
	// the same bound.
	x.root.fsys.prefetchOne(x.ctx, id, "big", 0)
	es, errno := x.list("alice/big")
	if errno != 0 || len(es) != 5 {
		t.Fatalf("listing cut at 5: %v %v", entryNames(es), errno)
	}
	// The fake sends names in reverse: f7…f3 are shown, f0 is not, but
	// it exists.
	if _, errno := x.lookup("alice/big/f0"); errno != 0 {
		t.Fatalf("lookup of a name past a cut listing: %v", errno)
	}
	if n := fake.count(opLstat, id, "big/f0"); n != 1 {
		t.Fatalf("a cut listing answered a lookup (%d LSTATs)", n)
	}
	es, errno = x.list("alice/odd")
	if errno != 0 || !slices.Equal(entryNames(es), []string{"dup"}) {
		t.Fatalf("listing with bad and repeated names: %q %v, want only dup", entryNames(es), errno)
	}
}

// TestNodeReadFollowsGrowth: an open file that grew on the peer reads on
// past its old end once a stat saw the new size (tail -f).
func TestNodeReadFollowsGrowth(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	fake.file(id, "log", []byte("line one\n"))
	x := newTestFS(t, fake, Options{AttrTTL: 50 * time.Millisecond}, "alice")

	n := x.mustLookup("alice/log")
	fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer fh.(fusefs.FileReleaser).Release(x.ctx)
	if b, errno := readAll(x.ctx, fh, 0); errno != 0 || string(b) != "line one\n" {
		t.Fatalf("first read: %q %v", b, errno)
	}
	fake.change(id, "log", []byte("line one\nline two\n"))
	eventually(t, 10*time.Second, "fstat sees the file grow", func() bool {
		var out fuse.AttrOut
		return n.Getattr(x.ctx, fh, &out) == 0 && out.Size == 18
	})
	if b, errno := readAll(x.ctx, fh, 9); errno != 0 || string(b) != "line two\n" {
		t.Fatalf("read past the old end: %q %v", b, errno)
	}
}

// TestNodeDirectoryPrefetch: opening a directory fetches the listings of
// its subdirectories two levels down in the background, so opening them
// then costs no call.
func TestNodeDirectoryPrefetch(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	for i := range 4 {
		fake.dir(id, fmt.Sprintf("top/sub%d/deeper/deepest", i))
		fake.file(id, fmt.Sprintf("top/sub%d/g", i), []byte("x"))
	}
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute}, "alice")

	if _, errno := x.list("alice/top"); errno != 0 {
		t.Fatal(errno)
	}
	eventually(t, 10*time.Second, "subdirectories two levels down listed ahead", func() bool {
		for i := range 4 {
			if fake.count(opReadDir, id, fmt.Sprintf("top/sub%d", i)) != 1 || fake.count(opReadDir, id, fmt.Sprintf("top/sub%d/deeper", i)) != 1 {
				return false
			}
		}
		return true
	})
	// The prefetch stops at two levels: the last of it has run.
	if n := fake.count(opReadDir, id, "top/sub0/deeper/deepest"); n != 0 {
		t.Fatalf("prefetch went three levels down")
	}
	for i := range 4 {
		es, errno := x.list(fmt.Sprintf("alice/top/sub%d", i))
		if errno != 0 || !slices.Equal(entryNames(es), []string{"g", "deeper"}) {
			t.Fatalf("sub%d: %v %v", i, entryNames(es), errno)
		}
		if n := fake.count(opReadDir, id, fmt.Sprintf("top/sub%d", i)); n != 1 {
			t.Fatalf("opening a prefetched listing listed it again (%d READDIRs)", n)
		}
	}
}

// TestNodeOpenFileAttrs: with the default AttrTTL of 10 s, fstat of a file
// held open for followAfter (go-fuse passes a handle) sees it grow within
// openAttrAge, and tells the kernel to keep the answer only
// openAttrKernel; fstat of a file just opened (cp, grep -r) and stat of a
// file nobody holds open are answered from the cache, with no call to the
// peer, however often they are asked.
func TestNodeOpenFileAttrs(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	fake.file(id, "log", []byte("line one\n"))
	fake.file(id, "other", []byte("quiet\n"))
	x := newTestFS(t, fake, Options{}, "alice")

	n := x.mustLookup("alice/log")
	other := x.mustLookup("alice/other")
	fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer fh.(fusefs.FileReleaser).Release(x.ctx)
	if b, errno := readAll(x.ctx, fh, 0); errno != 0 || string(b) != "line one\n" {
		t.Fatalf("first read: %q %v", b, errno)
	}
	before := fake.count(opLstat, id, "log")
	var out fuse.AttrOut
	if errno := n.Getattr(x.ctx, fh, &out); errno != 0 || out.Timeout() != 0 {
		t.Fatalf("fstat right after open: %v, kernel timeout %v; want the mount's", errno, out.Timeout())
	}
	if got := fake.count(opLstat, id, "log"); got != before {
		t.Errorf("fstat right after open made %d lstats; want none (the cache answers)", got-before)
	}
	time.Sleep(followAfter)
	fake.change(id, "log", []byte("line one\nline two\n"))
	start := time.Now()
	lstats := fake.count(opLstat, id, "log")
	otherLstats := fake.count(opLstat, id, "other")
	var grewAfter time.Duration
	// Poll fstat and stat ten times faster than tail -f does, for a
	// second.
	for time.Since(start) < time.Second {
		var out fuse.AttrOut
		if errno := n.Getattr(x.ctx, fh, &out); errno != 0 {
			t.Fatal(errno)
		}
		if out.Size == 18 && grewAfter == 0 {
			grewAfter = time.Since(start)
			if out.Timeout() != openAttrKernel {
				t.Errorf("kernel attribute timeout of an open file: %v, want %v", out.Timeout(), openAttrKernel)
			}
		}
		out = fuse.AttrOut{}
		if errno := other.Getattr(x.ctx, nil, &out); errno != 0 {
			t.Fatal(errno)
		}
		if out.Timeout() != 0 {
			t.Errorf("a file nobody holds open got a kernel timeout of %v; want the mount's", out.Timeout())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if grewAfter == 0 {
		t.Fatalf("fstat of the open file did not see it grow within a second (AttrTTL %v)", DefaultAttrTTL)
	}
	t.Logf("fstat saw the growth after %v", grewAfter.Round(time.Millisecond))
	if b, errno := readAll(x.ctx, fh, 9); errno != 0 || string(b) != "line two\n" {
		t.Fatalf("read past the old end: %q %v", b, errno)
	}
	elapsed := time.Since(start)
	if n := fake.count(opLstat, id, "log") - lstats; n < 1 || n > int(elapsed/openAttrAge)+1 {
		t.Errorf("%d lstats of the open file in %v of polling; want at most one per %v", n, elapsed, openAttrAge)
	}
	if n := fake.count(opLstat, id, "other") - otherLstats; n != 0 {
		t.Errorf("%d lstats of a file nobody holds open; want none (cached for AttrTTL)", n)
	}
}

// TestNodeLookupListsItsDirectory: a lookup in a directory whose listing
// was never fetched (here its own speculative listing failed) fetches
// it in the background, and the lookups of its other names are answered
// from it, not by an LSTAT each.
func TestNodeLookupListsItsDirectory(t *testing.T) {
	const n = 50
	fake := newFakeRemote(t)
	id := peerID("alice")
	fillDir(fake, id, "d", n)
	fake.fault(id, opReadDir, "d", errors.New("not now"))
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute}, "alice")
	x.mustLookup("alice/d")
	eventually(t, 10*time.Second, "the lookup's own listing of d to fail", func() bool {
		_, busy := x.root.fsys.flight(id, "d")
		return fake.count(opReadDir, id, "d") == 1 && !busy
	})
	fake.fault(id, opReadDir, "d", nil)

	x.mustLookup("alice/d/f00000")
	eventually(t, 10*time.Second, "d's listing", func() bool {
		_, ok := x.root.fsys.cache.dir(id, "d")
		return ok
	})
	for i := 1; i < n; i++ {
		x.mustLookup(fmt.Sprintf("alice/d/f%05d", i))
	}
	if got := fake.total(opLstat, id); got > 2 {
		t.Errorf("%d LSTATs for %d lookups in d; want at most 2 (d, and the first name)", got, n)
	}
}

// TestNodePrefetchManySubdirs: a directory of more subdirectories than
// prefetchMaxSubdirs gets its first prefetchMaxSubdirs listings fetched
// ahead, not none.
func TestNodePrefetchManySubdirs(t *testing.T) {
	const subdirs = prefetchMaxSubdirs + 44
	fake := newFakeRemote(t)
	id := peerID("alice")
	for i := range subdirs {
		fake.dir(id, fmt.Sprintf("top/d%03d", i))
	}
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute}, "alice")
	if _, errno := x.list("alice/top"); errno != 0 {
		t.Fatal(errno)
	}
	fetched := func() int {
		k := 0
		for i := range subdirs {
			if fake.count(opReadDir, id, fmt.Sprintf("top/d%03d", i)) > 0 {
				k++
			}
		}
		return k
	}
	eventually(t, 10*time.Second, fmt.Sprintf("%d subdirectories fetched ahead", prefetchMaxSubdirs), func() bool {
		return fetched() >= prefetchMaxSubdirs
	})
	time.Sleep(100 * time.Millisecond)
	if got := fetched(); got != prefetchMaxSubdirs {
		t.Errorf("%d of %d subdirectories fetched ahead; want the first %d", got, subdirs, prefetchMaxSubdirs)
	}
}
