//go:build linux

package fs_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// bombServer is a hostile SFTP server on loopback: its root holds dirs
// directories, and every directory below holds perDir subdirectories, an
// endless tree of huge listings synthesised on the fly. It counts the
// entries it sent.
type bombServer struct {
	dirs, perDir int
	served       atomic.Int64
	url          string
}

func startBombServer(t *testing.T, dirs, perDir int) *bombServer {
	t.Helper()
	host := testenv.NewSigner(t)
	cfg := &ssh.ServerConfig{
		// An attacker lets anyone in.
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
	}
	cfg.AddHostKey(host)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &bombServer{dirs: dirs, perDir: perDir}
	b.url = fmt.Sprintf("sftp://x@%s/?fingerprint=%s", l.Addr(), ssh.FingerprintSHA256(host.PublicKey()))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { b.serveConn(c, cfg) })
		}
	})
	return b
}

func (b *bombServer) serveConn(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp"
				req.Reply(ok, nil)
				if ok {
					go ssh.DiscardRequests(creqs)
					h := sftp.Handlers{FileGet: b, FilePut: b, FileCmd: b, FileList: b}
					srv := sftp.NewRequestServer(ch, h)
					_ = srv.Serve()
					srv.Close()
					return
				}
			}
		})
	}
}

var errRefused = errors.New("refused")

func (b *bombServer) Fileread(*sftp.Request) (io.ReaderAt, error)  { return nil, errRefused }
func (b *bombServer) Filewrite(*sftp.Request) (io.WriterAt, error) { return nil, errRefused }
func (b *bombServer) Filecmd(*sftp.Request) error                  { return errRefused }

func (b *bombServer) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		n := b.perDir
		if r.Filepath == "/" {
			n = b.dirs
		}
		return &bombLister{b: b, n: n}, nil
	case "Stat", "Lstat":
		return &bombLister{b: b, n: 1, stat: dirInfo(filepath.Base(r.Filepath))}, nil
	}
	return nil, errRefused
}

type bombLister struct {
	b    *bombServer
	n    int
	stat os.FileInfo
}

func (l *bombLister) ListAt(ls []os.FileInfo, off int64) (int, error) {
	if l.stat != nil {
		ls[0] = l.stat
		return 1, io.EOF
	}
	k := 0
	for ; k < len(ls) && int(off)+k < l.n; k++ {
		ls[k] = dirInfo("d" + strconv.Itoa(int(off)+k))
	}
	l.b.served.Add(int64(k))
	if int(off)+k >= l.n {
		return k, io.EOF
	}
	return k, nil
}

type dirInfo string

func (d dirInfo) Name() string       { return string(d) }
func (d dirInfo) Size() int64        { return 4096 }
func (d dirInfo) Mode() os.FileMode  { return os.ModeDir | 0o755 }
func (d dirInfo) ModTime() time.Time { return time.Unix(1700000000, 0) }
func (d dirInfo) IsDir() bool        { return true }
func (d dirInfo) Sys() any           { return nil }

// vmHWM returns the peak resident set size of pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// listingCut is the warning of a listing cut at --max-listing, logged
// once per directory.
const listingCut = "directory listing cut: the peer lists more entries than --max-listing allows"

// TestListingBomb: a hostile peer whose every directory lists a million
// subdirectories. Listing its root and one of its directories shows at
// most --max-listing entries, the background prefetch stops once its
// credit is spent (nobody opens what it fetched), the mount's peak RSS
// stays bounded, and the mount root keeps answering.
func TestListingBomb(t *testing.T) {
	const maxListing = 20000
	bomb := startBombServer(t, 64, 1_000_000)
	key := testenv.NewKey(t, t.TempDir(), "id")
	mnt := mountDir(t)
	m := startMount(t, mnt, "--timeout", "5s", "--identity", key.Path,
		"--max-listing", strconv.Itoa(maxListing), "--peer", "hostile="+bomb.url)
	start := time.Now()

	top, err := os.ReadDir(filepath.Join(mnt, "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 64 {
		t.Fatalf("the peer's root lists %d entries, want 64", len(top))
	}
	big, err := os.ReadDir(filepath.Join(mnt, "hostile", "d7"))
	if err != nil {
		t.Fatal(err)
	}
	if len(big) != maxListing {
		t.Errorf("a directory of a million entries lists %d, want the cap %d", len(big), maxListing)
	}
	m.proc.WaitRecord(t, 10*time.Second, listingCut, "peer", "hostile", "path", "/d7")

	// The root answers while the prefetch runs (and after).
	if es, err := os.ReadDir(mnt); err != nil || len(es) != 1 || es[0].Name() != "hostile" {
		t.Fatalf("mount root: %v, %v", es, err)
	}

	// Nobody opens the prefetched listings: the prefetch must come to
	// rest. Wait until the server has sent nothing new for a second.
	last, quiet := bomb.served.Load(), time.Now()
	testenv.WaitFor(t, 60*time.Second, "the prefetch to stop", func() bool {
		if n := bomb.served.Load(); n != last {
			last, quiet = n, time.Now()
		}
		return time.Since(quiet) > time.Second
	})
	elapsed := time.Since(start)
	served := bomb.served.Load()
	// What may have been read: the root, the cut listing, the prefetch
	// credit (50,000 entries) and its refill (833 a second), each listing
	// overshooting its limit by at most one reply of 100 entries.
	bound := int64(64 + maxListing + 50000 + 833*(elapsed.Seconds()+1) + 100*100)
	t.Logf("entries the hostile peer sent: %d in %v (bound %d)", served, elapsed.Round(time.Millisecond), bound)
	if served > bound {
		t.Errorf("the mount read %d entries from the hostile peer; the prefetch should have stopped by %d", served, bound)
	}
	if es, err := os.ReadDir(mnt); err != nil || len(es) != 1 {
		t.Fatalf("mount root after the prefetch: %v, %v", es, err)
	}
	hwm := vmHWM(t, m.proc.Cmd.Process.Pid)
	t.Logf("mount peak RSS (VmHWM): %d MiB", hwm>>20)
	limit := int64(200 << 20)
	if testenv.RaceEnabled() {
		limit = 600 << 20 // the race detector's shadow memory
	}
	if hwm > limit {
		t.Errorf("mount peak RSS %d MiB, want at most %d MiB", hwm>>20, limit>>20)
	}
}

// TestListingBombDefaultLimit: at the default --max-listing (1,000,000),
// a hostile peer's endless listing is cut at that many entries, within a
// bounded time, with the mount's peak RSS bounded, and the cut is
// reported once although the directory is listed twice (the second time
// from the cache: the peer sends nothing more).
func TestListingBombDefaultLimit(t *testing.T) {
	const maxListing = 1_000_000
	bomb := startBombServer(t, 4, 50_000_000)
	key := testenv.NewKey(t, t.TempDir(), "id")
	mnt := mountDir(t)
	// The pool's hard deadline (4 × --timeout) bounds one listing: a
	// million entries under the race detector on a loaded machine took
	// over 40 s; the cap, not the deadline, is under test here.
	m := startMount(t, mnt, "--timeout", "30s", "--identity", key.Path, "--peer", "hostile="+bomb.url)
	start := time.Now()
	dir := filepath.Join(mnt, "hostile", "d1")
	for range 2 {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != maxListing {
			t.Fatalf("an endless listing shows %d entries, want the default cap %d", len(names), maxListing)
		}
	}
	elapsed := time.Since(start)
	m.proc.WaitRecord(t, 10*time.Second, listingCut, "peer", "hostile", "path", "/d1")
	served := bomb.served.Load()
	t.Logf("two listings of an endless directory: %v, %d entries sent", elapsed.Round(time.Millisecond), served)
	// The cut listing, what the lookup's background fetch read before it
	// gave up, the replies in flight when reading stopped, and the
	// prefetch of d1's first subdirectories (endless too): the prefetch
	// credit (50,000 entries) and its refill (833 a second), each listing
	// overshooting its limit by at most a few replies.
	if bound := int64(maxListing + prefetchMaxEntriesE2E + 4*128 + 4 + 50000 + 833*(elapsed.Seconds()+1) + 8*4*128); served > bound {
		t.Errorf("the hostile peer sent %d entries, want at most %d", served, bound)
	}
	if elapsed > 2*time.Minute {
		t.Errorf("listing an endless directory took %v", elapsed)
	}
	if n := m.proc.Count(listingCut); n != 1 {
		t.Errorf("the cut was reported %d times, want once", n)
	}
	hwm := vmHWM(t, m.proc.Cmd.Process.Pid)
	t.Logf("mount peak RSS (VmHWM): %d MiB", hwm>>20)
	limit := int64(400 << 20)
	if testenv.RaceEnabled() {
		limit = 1200 << 20 // the race detector's shadow memory
	}
	if hwm > limit {
		t.Errorf("mount peak RSS %d MiB, want at most %d MiB", hwm>>20, limit>>20)
	}
}

// prefetchMaxEntriesE2E is fs's prefetchMaxEntries, as seen from outside.
const prefetchMaxEntriesE2E = 10000
