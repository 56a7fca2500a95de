//go:build linux

package fs_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/dsftp/dsftp/testdata/wanproxy"
)

// writeFiles writes n files named name(i) of size bytes each (content
// depends on i and gen) into dir and returns their contents.
func writeFiles(t *testing.T, dir string, n, size, gen int, name func(int) string) map[string][]byte {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for i := range n {
		b := bytes.Repeat([]byte(fmt.Sprintf("gen %d file %d\n", gen, i)), size/10+1)[:size]
		p := filepath.Join(dir, name(i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out[name(i)] = b
	}
	return out
}

func prefetchHits(m *mountProc) int { return m.proc.Count("prefetch hit") }

// readInOrder reads the named files of dir one after another, as grep -r
// or cp -r do, and checks their contents.
func readInOrder(t *testing.T, dir string, names []string, want map[string][]byte) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		if !bytes.Equal(b, want[n]) {
			t.Fatalf("%s: got %d bytes %.30q, want %d bytes %.30q", n, len(b), b, len(want[n]), want[n])
		}
	}
}

func numbered(prefix string) func(int) string {
	return func(i int) string { return fmt.Sprintf("%s%03d.txt", prefix, i) }
}

func names(n int, name func(int) string) []string {
	var out []string
	for i := range n {
		out = append(out, name(i))
	}
	return out
}

// TestPrefetchChangedFiles: files read in listing order are served from
// the prefetch, and once --attr-ttl has passed after they changed on the
// peer (new size, or same size and a new mtime) every read shows the new
// content: nothing staler than --attr-ttl.
func TestPrefetchChangedFiles(t *testing.T) {
	src := t.TempDir()
	dir := filepath.Join(src, "d")
	want := writeFiles(t, dir, 60, 3000, 1, numbered("f"))
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	m := startMount(t, mnt, "--attr-ttl", "1s", "--identity", sshd.Client.Path, "--peer", "a="+sshd.URL())
	md := filepath.Join(mnt, "a", "d")
	all := names(60, numbered("f"))
	if _, err := os.ReadDir(md); err != nil {
		t.Fatal(err)
	}
	readInOrder(t, md, all, want)
	hits := prefetchHits(m)
	if hits == 0 {
		t.Fatal("no prefetch hits reading 60 files in order")
	}
	t.Logf("first pass: %d prefetch hits of 60 files", hits)

	// Change every file: even ones grow, odd ones keep their size with new
	// content and an mtime 10 s later.
	for i, n := range all {
		p := filepath.Join(dir, n)
		if i%2 == 0 {
			want[n] = bytes.Repeat([]byte(fmt.Sprintf("gen 2 file %d, longer\n", i)), 200)
		} else {
			want[n] = bytes.Repeat([]byte{'A' + byte(i%26)}, 3000)
		}
		if err := os.WriteFile(p, want[n], 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(10 * time.Second)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // past --attr-ttl, here and in the kernel
	if _, err := os.ReadDir(md); err != nil {
		t.Fatal(err)
	}
	readInOrder(t, md, all, want)
	if got := prefetchHits(m); got == hits {
		t.Errorf("no prefetch hits on the second pass")
	}
}

// inotifyOpens records the names of files opened in dir (IN_OPEN) until
// the returned function is called, which returns them.
func inotifyOpens(t *testing.T, dir string) func() map[string]int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_OPEN); err != nil {
		t.Fatalf("inotify watch %s: %v", dir, err)
	}
	// An open of the marker directory, watched by the same instance, is
	// queued after every open before it: once read, nothing is left.
	marker := t.TempDir()
	markerWD, err := unix.InotifyAddWatch(fd, marker, unix.IN_OPEN)
	if err != nil {
		t.Fatalf("inotify watch %s: %v", marker, err)
	}
	opened := map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				if wd == markerWD {
					return
				}
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l]), "\x00")
				mu.Lock()
				opened[name]++
				mu.Unlock()
				off += unix.SizeofInotifyEvent + l
			}
		}
	}()
	stopped := false
	stop := func() map[string]int {
		if !stopped {
			stopped = true
			f, err := os.Open(marker)
			if err != nil {
				t.Fatalf("open the inotify marker: %v", err)
			}
			f.Close()
			<-done
			unix.Close(fd)
		}
		mu.Lock()
		defer mu.Unlock()
		return opened
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestPrefetchHiddenPaths: the prefetch opens on the peer only files the
// reader could see and read: never names starting with ".", never files
// without read permission, never what a dsftp share hides (.dsftpignore).
func TestPrefetchHiddenPaths(t *testing.T) {
	src := t.TempDir()
	// "+" sorts before "." and "a" after it: the hidden file sits in the
	// middle of the listing, where a walk's prefetch passes it.
	want := writeFiles(t, src, 20, 2000, 1, numbered("+"))
	for k, v := range writeFiles(t, src, 20, 2000, 1, numbered("a")) {
		want[k] = v
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{".hidden", 0o644}, {"+010.txt", 0}, {"a005.txt", 0}, {"secret.txt", 0o644}} {
		if err := os.WriteFile(filepath.Join(src, f.name), []byte("not for the prefetch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(src, f.name), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, ".dsftpignore"), []byte("secret.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	visible := slicesWithout(append(names(20, numbered("+")), names(20, numbered("a"))...), "+010.txt", "a005.txt")

	t.Run("sshd", func(t *testing.T) {
		sshd := testenv.StartSSHD(t, src)
		mnt := mountDir(t)
		m := startMount(t, mnt, "--identity", sshd.Client.Path, "--peer", "a="+sshd.URL())
		checkUntouched(t, m, src, filepath.Join(mnt, "a"), visible, want, ".hidden", "+010.txt", "a005.txt")
	})
	t.Run("share", func(t *testing.T) {
		key := testenv.NewKey(t, t.TempDir(), "id")
		ak := filepath.Join(t.TempDir(), "authorized_keys")
		if err := os.WriteFile(ak, []byte(key.Public()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		url := startShare(t, src, ak)
		mnt := mountDir(t)
		m := startMount(t, mnt, "--identity", key.Path, "--peer", "b="+url)
		// The share reads every file it lists once, for its key scan, and
		// remembers the verdict once the file is 2 s old: list after that,
		// so that the watch below sees the prefetch's opens only.
		time.Sleep(time.Until(written.Add(3 * time.Second)))
		if _, err := os.ReadDir(filepath.Join(mnt, "b")); err != nil {
			t.Fatal(err)
		}
		checkUntouched(t, m, src, filepath.Join(mnt, "b"), visible, want, ".hidden", "secret.txt", "+010.txt", "a005.txt")
	})
}

// checkUntouched reads the visible files in listing order through the
// mount and checks that the peer never opened the untouchable ones.
func checkUntouched(t *testing.T, m *mountProc, src, peerDir string, visible []string, want map[string][]byte, untouchable ...string) {
	t.Helper()
	stop := inotifyOpens(t, src)
	if _, err := os.ReadDir(peerDir); err != nil {
		t.Fatal(err)
	}
	readInOrder(t, peerDir, visible, want)
	opened := stop()
	if prefetchHits(m) == 0 {
		t.Fatal("no prefetch hits: the test proves nothing")
	}
	for _, n := range untouchable {
		if opened[n] > 0 {
			t.Errorf("%s was opened on the peer %d times; the reader never opened it", n, opened[n])
		}
	}
	if opened[visible[len(visible)-1]] == 0 {
		t.Errorf("the inotify watch saw no open of %s: the check proves nothing", visible[len(visible)-1])
	}
}

func slicesWithout(s []string, drop ...string) []string {
	var out []string
	for _, x := range s {
		keep := true
		for _, d := range drop {
			keep = keep && x != d
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// TestPrefetchFrozenPeer: a peer frozen (SIGSTOP) while a reader goes
// through its files in order, with fetches ahead in flight, fails the
// reader within the deadline, and the mount root keeps answering.
func TestPrefetchFrozenPeer(t *testing.T) {
	src := t.TempDir()
	want := writeFiles(t, src, 300, 4000, 1, numbered("f"))
	a := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	m := startMount(t, mnt, "--timeout", "5s", "--identity", a.Client.Path, "--peer", "a="+a.URL())
	pd := filepath.Join(mnt, "a")
	if _, err := os.ReadDir(pd); err != nil {
		t.Fatal(err)
	}
	all := names(300, numbered("f"))
	readInOrder(t, pd, all[:4], want) // the prefetch is running now
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Signal(syscall.SIGCONT) })
	start := time.Now()
	failed := make(chan error, 1)
	go func() {
		for _, n := range all[4:] {
			if _, err := os.ReadFile(filepath.Join(pd, n)); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	}()
	err := within(t, 3*time.Second, "ls of the root", func() error {
		_, err := os.ReadDir(mnt)
		return err
	})
	if err != nil {
		t.Fatalf("ls root while the peer is frozen: %v", err)
	}
	select {
	case err := <-failed:
		if !isTimeoutOrEIO(err) {
			t.Fatalf("reading on through the frozen peer: %v, want ETIMEDOUT or EIO", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("reading on through the frozen peer did not fail within 30 s (deadline 5 s)")
	}
	t.Logf("reader failed after %v, %d prefetch hits", time.Since(start).Round(time.Millisecond), prefetchHits(m))
}

// TestPrefetchRandomAccess: random reads fetch at most twice the bytes
// asked, counted on the wire by a proxy between the mount and the peer:
// 4 KiB reads across a 1 GiB (sparse) file, and small files opened in a
// random order.
func TestPrefetchRandomAccess(t *testing.T) {
	src := t.TempDir()
	big := filepath.Join(src, "big.bin")
	if f, err := os.Create(big); err != nil {
		t.Fatal(err)
	} else {
		if err := f.Truncate(1 << 30); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	want := writeFiles(t, filepath.Join(src, "d"), 100, 16<<10, 1, numbered("f"))
	sshd := testenv.StartSSHD(t, src)
	proxy := wanproxy.New(sshd.Addr, wanproxy.Link{}).Serve(t)
	mnt := mountDir(t)
	url := strings.Replace(sshd.URL(), sshd.Addr, proxy.Addr(), 1)
	m := startMount(t, mnt, "--identity", sshd.Client.Path, "--peer", "a="+url)
	t.Cleanup(func() { m.stop(t) }) // before the proxy goes
	pd := filepath.Join(mnt, "a")
	if _, err := os.ReadDir(filepath.Join(pd, "d")); err != nil { // connected, listed
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))

	before := proxy.BytesToClients()
	f, err := os.Open(filepath.Join(pd, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	const reads = 300
	for range reads {
		off := rng.Int64N(1<<30/4096) * 4096
		if n, err := f.ReadAt(buf, off); err != nil || n != len(buf) {
			t.Fatalf("pread at %d: %d, %v", off, n, err)
		}
	}
	f.Close()
	got, asked := proxy.BytesToClients()-before, int64(reads*4096)
	t.Logf("random 4 KiB reads: %d bytes asked, %d on the wire (%.2f×)", asked, got, float64(got)/float64(asked))
	if got > 2*asked {
		t.Errorf("random 4 KiB reads fetched %d bytes for %d asked (more than 2×)", got, asked)
	}

	all := names(100, numbered("f"))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	before = proxy.BytesToClients()
	readInOrder(t, filepath.Join(pd, "d"), all, want)
	got, asked = proxy.BytesToClients()-before, int64(len(all)*16<<10)
	t.Logf("small files in random order: %d bytes asked, %d on the wire (%.2f×), %d prefetch hits", asked, got, float64(got)/float64(asked), prefetchHits(m))
	if got > 2*asked {
		t.Errorf("small files in random order fetched %d bytes for %d asked (more than 2×)", got, asked)
	}
}
