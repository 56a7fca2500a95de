//go:build linux

package fs

import (
	"bytes"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Tests of the sibling prefetch (prefetch.go) over the fake remote,
// without a mount.

// fakeSiblings stores n files dir/f000.txt… of size bytes on peer id
// (content depending on gen) and returns their names in listing order
// and contents.
func fakeSiblings(fake *fakeRemote, id, dir string, n, size, gen int) ([]string, map[string][]byte) {
	var names []string
	want := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("f%03d.txt", i)
		b := bytes.Repeat([]byte(fmt.Sprintf("gen %d file %d\n", gen, i)), size/10+1)[:size]
		fake.file(id, path.Join(dir, name), b)
		names = append(names, name)
		want[name] = b
	}
	return names, want
}

// readFiles reads dir's named files in the given order and checks them.
func (x *testFS) readFiles(dir string, names []string, want map[string][]byte) {
	x.t.Helper()
	for _, n := range names {
		b, errno := x.read(path.Join(dir, n))
		if errno != 0 {
			x.t.Fatalf("read %s: %v", n, errno)
		}
		if !bytes.Equal(b, want[n]) {
			x.t.Fatalf("%s: got %d bytes %.30q, want %d bytes %.30q", n, len(b), b, len(want[n]), want[n])
		}
	}
}

func (x *testFS) prefetchStats() prefetchStats {
	pf := x.root.fsys.pf
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.stats
}

func prefetchOptions() Options {
	return Options{AttrTTL: time.Minute, PrefetchMemory: DefaultPrefetchMemory}
}

// TestNodePrefetchInOrder: files opened in listing order are fetched
// ahead, once each, and served from memory; directories, symlinks, empty
// and unreadable files and names starting with "." are never fetched.
func TestNodePrefetchInOrder(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 40, 10<<10, 1)
	fake.dir(id, "d/f010.dir")
	fake.put(id, "d/f020.lnk", &fakeNode{mode: os.ModeSymlink | 0o777, target: "f021.txt"})
	fake.file(id, "d/f015.empty", nil)
	fake.put(id, "d/f025.locked", &fakeNode{mode: 0, data: []byte("no read permission")})
	fake.file(id, "d/.hidden", []byte("a hidden file"))
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names, want)

	st := x.prefetchStats()
	if st.hits < len(names)-4 || st.misses != 0 || st.failed != 0 {
		t.Fatalf("prefetch of %d files read in order: %+v, want at least %d hits and no misses", len(names), st, len(names)-4)
	}
	if n := fake.total(opOpen, id); n > 4 {
		t.Fatalf("%d files read in order opened %d on the peer, want at most 4 (the rest from memory)", len(names), n)
	}
	for _, n := range names {
		if c := fake.count(opFetch, id, "d/"+n); c > 1 {
			t.Fatalf("%s fetched %d times", n, c)
		}
	}
	for _, n := range []string{"f010.dir", "f020.lnk", "f015.empty", "f025.locked", ".hidden"} {
		if c := fake.count(opFetch, id, "d/"+n); c != 0 {
			t.Fatalf("%s fetched ahead %d times, want never", n, c)
		}
	}
}

// TestNodePrefetchInodeOrder: a reader going by inode number (cp -r) is
// followed as well, and names starting with "." met in that order are
// skipped.
func TestNodePrefetchInodeOrder(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 40, 4<<10, 1)
	var hidden []string
	for i := range 8 {
		h := fmt.Sprintf(".h%d", i)
		fake.file(id, "d/"+h, []byte("hidden"))
		hidden = append(hidden, h)
	}
	byIno := func(s []string) {
		sort.Slice(s, func(i, j int) bool { return inoOf(id, "d/"+s[i]) < inoOf(id, "d/"+s[j]) })
	}
	byIno(names)
	all := append(append([]string(nil), names...), hidden...)
	byIno(all)
	// The test means something only if a hidden name lies within the
	// read, after the prefetch has started (the second file).
	second, last, regular := -1, -1, 0
	for i, s := range all {
		if !strings.HasPrefix(s, ".") {
			if regular++; regular == 2 {
				second = i
			}
			last = i
		}
	}
	if !slices.ContainsFunc(all[second+1:last], func(s string) bool { return strings.HasPrefix(s, ".") }) {
		t.Fatalf("no hidden name inside the inode order: %v", all)
	}
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names, want)
	if st := x.prefetchStats(); st.hits < len(names)/2 {
		t.Fatalf("prefetch of %d files read in inode order: %+v, want at least %d hits", len(names), st, len(names)/2)
	}
	for _, h := range hidden {
		if c := fake.count(opFetch, id, "d/"+h); c != 0 {
			t.Fatalf("%s fetched ahead", h)
		}
	}
}

// TestNodePrefetchRandomAccess: files opened in a random order cost at
// most twice the bytes read (as the e2e TestPrefetchRandomAccess
// measures on the wire).
func TestNodePrefetchRandomAccess(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 100, 16<<10, 1)
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	x.readFiles("alice/d", names, want)
	asked, got := int64(len(names)*16<<10), fake.sent.Load()
	t.Logf("small files in random order: %d bytes asked, %d sent (%.2f×), prefetch %+v", asked, got, float64(got)/float64(asked), x.prefetchStats())
	if got > 2*asked {
		t.Fatalf("small files in random order fetched %d bytes for %d asked (more than 2×)", got, asked)
	}
}

// TestNodePrefetchMemoryBound: the content cache and the fetches in
// flight never hold more than PrefetchMemory, and a file too big for the
// bound is not fetched ahead, while a reader that only peeks at each
// file (so nothing is handed back) walks the directory.
func TestNodePrefetchMemoryBound(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 60, 10<<10, 1)
	big := bytes.Repeat([]byte("big"), 100<<10)
	fake.file(id, "d/f030.txt", big)
	want["f030.txt"] = big
	const budget = 100 << 10
	x := newTestFS(t, fake, Options{AttrTTL: time.Minute, PrefetchMemory: budget}, "alice")
	pf := x.root.fsys.pf

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	most := int64(0)
	for _, name := range names {
		n := x.mustLookup("alice/d/" + name)
		fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
		if errno != 0 {
			t.Fatalf("open %s: %v", name, errno)
		}
		b, errno := readAt(x.ctx, fh, make([]byte, 16), 0)
		if errno != 0 || !bytes.Equal(b, want[name][:16]) {
			t.Fatalf("%s: %q %v", name, b, errno)
		}
		fh.(fusefs.FileReleaser).Release(x.ctx)
		pf.mu.Lock()
		held := pf.mem + pf.inBytes
		pf.mu.Unlock()
		if held > budget {
			t.Fatalf("after opening %s the prefetch holds %d bytes, more than its %d", name, held, budget)
		}
		most = max(most, held)
	}
	if most < budget/2 {
		t.Fatalf("the prefetch held at most %d bytes: the bound of %d was never approached", most, budget)
	}
	if c := fake.count(opFetch, id, "d/f030.txt"); c != 0 {
		t.Fatalf("a file bigger than the bound was fetched ahead")
	}
	if st := x.prefetchStats(); st.hits < len(names)/2 {
		t.Fatalf("prefetch within a small bound: %+v, want at least %d hits", st, len(names)/2)
	}
	x.readFiles("alice/d", []string{"f030.txt"}, want)
}

// TestNodePrefetchChangedFile: a file changed on the peer (same size and
// a new mtime, or a new size) is fetched again once its attributes
// expired, and reads show the new content.
func TestNodePrefetchChangedFile(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 24, 1<<10, 1)
	const ttl = 500 * time.Millisecond
	x := newTestFS(t, fake, Options{AttrTTL: ttl, PrefetchMemory: DefaultPrefetchMemory}, "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names, want)
	same := bytes.ToUpper(want["f010.txt"])
	longer := append(bytes.Clone(want["f011.txt"]), "and more"...)
	fake.change(id, "d/f010.txt", same)
	fake.change(id, "d/f011.txt", longer)
	want["f010.txt"], want["f011.txt"] = same, longer
	time.Sleep(ttl + 50*time.Millisecond) // every cached answer expired

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names, want)
	for _, n := range []string{"f010.txt", "f011.txt"} {
		if c := fake.count(opFetch, id, "d/"+n); c != 2 {
			t.Fatalf("%s changed and read twice in order: fetched %d times, want 2", n, c)
		}
	}
}

// TestNodePrefetchFailures: a fetch that times out fails the open of its
// file with ETIMEDOUT without asking the peer again, and stops the
// prefetch for the peer; a fetch refused for the file itself, or cut
// short because the file shrank, falls back to reading it.
func TestNodePrefetchFailures(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 12, 1<<10, 1)
	fake.setTimeout(200 * time.Millisecond)
	fake.fault(id, opFetch, "d/f003.txt", errHold)
	fake.fault(id, opFetch, "d/f002.txt", iofs.ErrPermission)
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	// f007 shrinks on the peer after the listing: its fetch comes back
	// short.
	fake.change(id, "d/f007.txt", []byte("short now"))
	want["f007.txt"] = []byte("short now")
	x.readFiles("alice/d", names[:3], want)
	if f, o := fake.count(opFetch, id, "d/f002.txt"), fake.count(opOpen, id, "d/f002.txt"); f != 1 || o != 1 {
		t.Fatalf("f002, whose fetch was refused: fetched %d times and opened %d times, want once each", f, o)
	}
	if _, errno := x.read("alice/d/f003.txt"); errno != syscall.ETIMEDOUT {
		t.Fatalf("open of a file whose fetch timed out: %v, want ETIMEDOUT", errno)
	}
	if n := fake.count(opOpen, id, "d/f003.txt"); n != 0 {
		t.Fatalf("the peer was asked again (%d OPENs) after the fetch timed out", n)
	}
	pf := x.root.fsys.pf
	pf.mu.Lock()
	run := pf.runs[key(id, "d")]
	stopped := run != nil && run.active() < 0
	pf.mu.Unlock()
	if !stopped {
		t.Fatalf("the prefetch goes on after a fetch timed out")
	}

	fake.fault(id, opFetch, "d/f003.txt", nil)
	x.readFiles("alice/d", names[3:], want)
	if st := x.prefetchStats(); st.failed < 3 {
		t.Fatalf("prefetch stats %+v, want the failed fetches counted", st)
	}
}

// TestNodePrefetchBigFile: of a file bigger than prefetchWhole only the
// start is fetched; the rest is read from the peer, from where the
// fetched part ends.
func TestNodePrefetchBigFile(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 10, 1<<10, 1)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	fake.file(id, "d/f004.txt", big)
	want["f004.txt"] = big
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names, want)
	if c := fake.count(opFetch, id, "d/f004.txt"); c != 1 {
		t.Fatalf("big file fetched %d times, want its start once", c)
	}
	if c := fake.count(opOpen, id, "d/f004.txt"); c != 1 {
		t.Fatalf("big file opened %d times on the peer, want 1 (for the rest)", c)
	}
	if st := x.prefetchStats(); st.fetched >= int64(len(big)) {
		t.Fatalf("prefetch fetched %d bytes, more than the start of the big file", st.fetched)
	}
}

// TestNodePrefetchWalk: a walk (grep -r, cp -r) lists a directory, then
// reads its files, then goes on to the next directory. Only the first
// file of the first directory is opened on the peer: the rest of it is
// fetched from that open on, and the next directory's files while the
// reader finishes this one.
func TestNodePrefetchWalk(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d1", 20, 1<<10, 1)
	fakeSiblings(fake, id, "d2", 20, 1<<10, 1)
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	for _, d := range []string{"alice", "alice/d1", "alice/d2"} {
		if _, errno := x.list(d); errno != 0 {
			t.Fatal(errno)
		}
	}
	for _, d := range []string{"d1", "d2"} {
		x.readFiles("alice/"+d, names, want)
	}
	if n := fake.total(opOpen, id); n != 1 {
		t.Fatalf("a walk of 2 × %d files opened %d on the peer, want 1 (the first)", len(names), n)
	}
	if n := fake.count(opOpen, id, "d1/"+names[0]); n != 1 {
		t.Fatalf("the first file opened %d times on the peer, want 1 (nothing fetched before it)", n)
	}
	if st := x.prefetchStats(); st.hits != 2*len(names)-1 || st.misses != 0 {
		t.Fatalf("prefetch of a walk: %+v, want %d hits and no misses", st, 2*len(names)-1)
	}
}

// TestNodePrefetchListingOrder: a reader going in the order the peer
// listed the directory (grep -r, find; the fake lists by name reversed)
// is followed too.
func TestNodePrefetchListingOrder(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 40, 4<<10, 1)
	slices.Reverse(names)
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	es, errno := x.list("alice/d")
	if errno != 0 {
		t.Fatal(errno)
	}
	var listed []string
	for _, e := range es {
		if e.Name != "." && e.Name != ".." {
			listed = append(listed, e.Name)
		}
	}
	if !slices.Equal(listed, names) {
		t.Fatalf("the fake lists %v, want %v (by name reversed)", listed, names)
	}
	x.readFiles("alice/d", names, want)
	if n := fake.total(opOpen, id); n > 1 {
		t.Fatalf("%d files read in listing order opened %d on the peer, want 1", len(names), n)
	}
	if st := x.prefetchStats(); st.hits != len(names)-1 || st.misses != 0 {
		t.Fatalf("prefetch in listing order: %+v, want %d hits and no misses", st, len(names)-1)
	}
}

// TestNodePrefetchParallelReaders: `ls | xargs -P16 -n8 cat` opens the
// listed files as 16 readers of 8 files each, started in order (0, 8,
// …, 120), then interleaved in whatever order the processes get there:
// still followed, and no file is fetched twice.
func TestNodePrefetchParallelReaders(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 256, 4<<10, 1)
	x := newTestFS(t, fake, prefetchOptions(), "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var order []string
	for batch := 0; batch < len(names); batch += 16 * 8 {
		for r := range 8 {
			procs := rng.Perm(16)
			if batch == 0 && r == 0 {
				procs = identityPerm(16) // xargs starts them in order
			}
			for _, p := range procs {
				order = append(order, names[batch+8*p+r])
			}
		}
	}
	x.readFiles("alice/d", order, want)
	st := x.prefetchStats()
	if st.hits < len(names)-8 {
		t.Fatalf("prefetch of %d files read by 16 parallel readers: %+v, want at least %d hits", len(names), st, len(names)-8)
	}
	for _, n := range names {
		if c := fake.count(opFetch, id, "d/"+n) + fake.count(opOpen, id, "d/"+n); c > 1 {
			t.Fatalf("%s fetched or opened %d times, want once", n, c)
		}
	}
}

func identityPerm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// TestNodePrefetchedFileGrows: a file served from the prefetch that grew
// on the peer reads on past its old end (tail -f) once a stat saw it.
func TestNodePrefetchedFileGrows(t *testing.T) {
	fake := newFakeRemote(t)
	id := peerID("alice")
	names, want := fakeSiblings(fake, id, "d", 8, 1<<10, 1)
	x := newTestFS(t, fake, Options{AttrTTL: 300 * time.Millisecond, PrefetchMemory: DefaultPrefetchMemory}, "alice")

	if _, errno := x.list("alice/d"); errno != 0 {
		t.Fatal(errno)
	}
	x.readFiles("alice/d", names[:4], want)
	n := x.mustLookup("alice/d/f004.txt")
	fh, _, errno := n.Open(x.ctx, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer fh.(fusefs.FileReleaser).Release(x.ctx)
	if _, ok := fh.(*memHandle); !ok {
		t.Fatalf("f004 read in order is not served from the prefetch (%T)", fh)
	}
	if b, errno := readAll(x.ctx, fh, 0); errno != 0 || !bytes.Equal(b, want["f004.txt"]) {
		t.Fatalf("first read: %d bytes, %v", len(b), errno)
	}
	grown := append(bytes.Clone(want["f004.txt"]), "appended\n"...)
	fake.change(id, "d/f004.txt", grown)
	eventually(t, 10*time.Second, "a stat sees the file grow", func() bool {
		var out fuse.AttrOut
		return n.Getattr(x.ctx, fh, &out) == 0 && out.Size == uint64(len(grown))
	})
	if b, errno := readAll(x.ctx, fh, int64(len(want["f004.txt"]))); errno != 0 || string(b) != "appended\n" {
		t.Fatalf("read past the old end: %q %v", b, errno)
	}
}
