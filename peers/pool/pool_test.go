//go:build linux

package pool

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/dsftp/dsftp/testdata/wanproxy"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func peerOf(t *testing.T, s *testenv.SSHD) peers.Peer {
	t.Helper()
	p, err := peers.ParsePeerFlag("p=" + s.URL())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// silentListener accepts TCP connections and never says anything, like a
// frozen or firewalled host.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestReader(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 5<<20+12345)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSSHD(t, dir)
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	ctx := testenv.Context(t, time.Minute)
	r, err := p.OpenReader(ctx, peerOf(t, s), "f", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(data))
	}
	if r.c.piece != bigPiece {
		t.Errorf("OpenSSH %s: piece size %d, want %d (limits@openssh.com)", s.Addr, r.c.piece, bigPiece)
	}
	// Sequential, in odd-sized reads: exercises the read-ahead queue.
	var got bytes.Buffer
	buf := make([]byte, 100000)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("sequential read differs (%d bytes, want %d)", got.Len(), len(data))
	}
	// In place, as FUSE reads: 128 KiB steps, mostly inside one chunk.
	got.Reset()
	r2, err := p.OpenReader(ctx, peerOf(t, s), "f", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); ; off += 128 << 10 {
		bs, release, err := r2.ReadAtNoCopy(ctx, make([]byte, 128<<10), off)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range bs {
			got.Write(b)
			n += len(b)
		}
		release()
		if n == 0 {
			break
		}
	}
	r2.Close()
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("ReadAtNoCopy differs (%d bytes, want %d)", got.Len(), len(data))
	}
	// Random reads, some crossing chunk boundaries and the end.
	for _, off := range []int64{0, 1, ChunkSize - 10, 3*ChunkSize + 7, int64(len(data)) - 5, 12345} {
		b := make([]byte, 300000)
		n, err := r.ReadAt(b, off)
		want := data[off:min(int(off)+len(b), len(data))]
		if n != len(want) || !bytes.Equal(b[:n], want) {
			t.Errorf("ReadAt(%d): %d bytes, err %v; want %d bytes", off, n, err, len(want))
		}
		if n < len(b) && err != io.EOF {
			t.Errorf("ReadAt(%d) short without io.EOF: %v", off, err)
		}
	}
	if n, err := r.ReadAt(make([]byte, 10), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at EOF: %d, %v", n, err)
	}
}

func TestHostKeyMismatch(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	other := testenv.NewKey(t, t.TempDir(), "other")
	peer := peerOf(t, s)
	peer.HostKeyFingerprint = other.Fingerprint()
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	_, err := p.Lstat(testenv.Context(t, time.Minute), peer, "")
	if err == nil {
		t.Fatal("connected despite a wrong pinned fingerprint")
	}
	if !strings.Contains(err.Error(), other.Fingerprint()) || !strings.Contains(err.Error(), s.HostKey.Fingerprint()) {
		t.Errorf("error should name both fingerprints: %v", err)
	}
	if Errno(err) != syscall.EACCES {
		t.Errorf("errno %v, want EACCES", Errno(err))
	}
	// Exact key pinning (as discovery does) accepts the right key.
	peer.HostKeyFingerprint = ""
	peer.HostKey = s.HostKey.Signer.PublicKey()
	peer.ID = "pinned"
	if _, err := p.Lstat(testenv.Context(t, time.Minute), peer, ""); err != nil {
		t.Errorf("exact host key: %v", err)
	}
}

func TestNoAcceptedKey(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	stranger := testenv.NewKey(t, t.TempDir(), "stranger")
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{stranger.Signer}})
	_, err := p.Lstat(testenv.Context(t, time.Minute), peerOf(t, s), "")
	if Errno(err) != syscall.EACCES || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("login with an unknown key: %v (errno %v), want EACCES naming --identity", err, Errno(err))
	}
}

func TestKnownHosts(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	peer.HostKeyFingerprint = ""
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}, KnownHostsFile: kh})
	_, err := p.Lstat(testenv.Context(t, time.Minute), peer, "")
	if err == nil || !strings.Contains(err.Error(), "not known") || !strings.Contains(err.Error(), s.HostKey.Fingerprint()) {
		t.Fatalf("unknown host: %v", err)
	}
	// The server also has an ECDSA host key, which Go's client would pick
	// by default; known_hosts holds only the ed25519 one (as OpenSSH's ssh
	// records it), so dsftp must ask for that type.
	s.AddECDSAHostKey(t)
	host := "[127.0.0.1]:" + strings.Split(s.Addr, ":")[1]
	line := host + " " + s.HostKey.Public() + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}, KnownHostsFile: kh})
	if _, err := p2.Lstat(testenv.Context(t, time.Minute), peer, ""); err != nil {
		t.Fatalf("host in known_hosts: %v", err)
	}
}

func TestAgentAuth(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	keyring := agent.NewKeyring()
	priv, err := ssh.ParseRawPrivateKey(mustRead(t, s.Client.Path))
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	p := newPool(t, Options{Timeout: 5 * time.Second, AgentSocket: sock})
	if _, err := p.ReadDir(testenv.Context(t, time.Minute), peerOf(t, s), ""); err != nil {
		t.Fatalf("login with the agent's key: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSilentPeerFailsFast: an address that accepts TCP but never speaks
// SSH fails within the deadline, and again at once during backoff.
func TestSilentPeerFailsFast(t *testing.T) {
	peer := peers.Peer{ID: "silent", Name: "silent", Addrs: []string{silentListener(t)}, HostKeyFingerprint: "SHA256:x"}
	p := newPool(t, Options{Timeout: time.Second})
	start := time.Now()
	_, err := p.Lstat(context.Background(), peer, "")
	if err == nil {
		t.Fatal("silent peer answered")
	}
	if e := Errno(err); e != syscall.ETIMEDOUT && e != syscall.EHOSTUNREACH {
		t.Errorf("errno %v (%v), want ETIMEDOUT or EHOSTUNREACH", e, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 1 s deadline", d)
	}
	start = time.Now()
	if _, err := p.Lstat(context.Background(), peer, ""); err == nil {
		t.Fatal("silent peer answered the second time")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("second attempt during backoff took %v; want an immediate failure", d)
	}
	// A refused port says so.
	dead := peers.Peer{ID: "dead", Addrs: []string{"127.0.0.1:1"}}
	if _, err := p.Lstat(context.Background(), dead, ""); Errno(err) != syscall.ECONNREFUSED {
		t.Errorf("refused port: %v (errno %v), want ECONNREFUSED", err, Errno(err))
	}
}

// TestNewAddressSkipsBackoff: a peer that failed and then advertises a
// new address is dialed at once there, not after the old address's
// backoff.
func TestNewAddressSkipsBackoff(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	good := peer.Addrs
	peer.Addrs = []string{"127.0.0.1:1"}
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	if _, err := p.Lstat(context.Background(), peer, ""); err == nil {
		t.Fatal("a refused port answered")
	}
	// Same address again: refused at once by the backoff, no dial.
	if _, err := p.Lstat(context.Background(), peer, ""); err == nil {
		t.Fatal("a refused port answered the second time")
	}
	peer.Addrs = good
	if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
		t.Fatalf("after the peer moved to %v: %v; want the new address dialed at once", good, err)
	}
}

// TestHappyEyeballs: a peer whose first address is silent is reached
// through its second, in far less than the deadline the first would burn;
// the working address is remembered.
func TestHappyEyeballs(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	silent := silentListener(t)
	peer.Addrs = []string{silent, s.Addr}
	p := newPool(t, Options{Timeout: 20 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	ctx := testenv.Context(t, time.Minute)
	start := time.Now()
	if _, err := p.Lstat(ctx, peer, ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: the addresses were not raced", d)
	}
	g, _ := p.group(peer)
	g.mu.Lock()
	good, order := g.good, g.orderAddrsLocked(peer.Addrs)
	g.mu.Unlock()
	if good != s.Addr || order[0] != s.Addr {
		t.Errorf("remembered %q, order %v; want %s first", good, order, s.Addr)
	}
}

// TestSpreadAcrossConnections: concurrent open files use up to
// Connections connections.
func TestSpreadAcrossConnections(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	s := testenv.StartSSHD(t, dir)
	peer := peerOf(t, s)
	p := newPool(t, Options{Connections: 3, Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	ctx := testenv.Context(t, time.Minute)
	var readers []*Reader
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		r, err := p.OpenReader(ctx, peer, n, -1)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	g, _ := p.group(peer)
	conns := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.conns)
	}
	// Extra connections are dialled in the background.
	testenv.WaitFor(t, 20*time.Second, "a second connection", func() bool { return conns() >= 2 })
	if n := conns(); n > 3 {
		t.Errorf("%d connections, want at most Connections=3", n)
	}
	for i, r := range readers {
		b := make([]byte, 4)
		k, err := r.ReadAt(b, 0)
		if k != 1 || err != io.EOF || b[0] != "abcdef"[i] {
			t.Errorf("reader %d: %q %v", i, b[:k], err)
		}
		r.Close()
	}
}

func TestErrno(t *testing.T) {
	for err, want := range map[error]syscall.Errno{
		nil:                 0,
		os.ErrNotExist:      syscall.ENOENT,
		ErrTimeout:          syscall.ETIMEDOUT,
		ErrUnreachable:      syscall.EHOSTUNREACH,
		context.Canceled:    syscall.EINTR,
		syscall.EPIPE:       syscall.EIO,
		errors.New("other"): syscall.EIO,
		&HostKeyError{}:     syscall.EACCES,
	} {
		if got := Errno(err); got != want {
			t.Errorf("Errno(%v) = %v, want %v", err, got, want)
		}
	}
}

// TestFreshAdvertSkipsBackoff: a peer whose dial failed and whose advert
// then comes again (a cable plugged back in, the same address) is dialed
// at once, not refused with the old error until the backoff ends.
func TestFreshAdvertSkipsBackoff(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	// A port nobody listens on yet: refused, then forwarded to sshd.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	peer.Addrs = []string{addr}
	peer.Updated = time.Now()
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	if _, err := p.Lstat(context.Background(), peer, ""); err == nil {
		t.Fatal("a refused port answered")
	}
	// The peer is back at the same address.
	fwd := wanproxy.New(s.Addr, wanproxy.Link{})
	if err := fwd.ListenAt(addr); err != nil {
		t.Fatal(err)
	}
	fwd.Serve(t)
	// The same advert as before: refused at once by the backoff.
	if _, err := p.Lstat(context.Background(), peer, ""); err == nil {
		t.Fatal("answered within the backoff without news of the peer")
	}
	peer.Updated = time.Now()
	if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
		t.Fatalf("after a fresh advert: %v; want the peer dialed at once", err)
	}
}

// TestBusyShareTriedAgain: a share that resets new connections before
// login (busy: OpenSSH past MaxStartups, a dsftp share making room
// from a flooded address) is dialed again at once, a few times; one that
// always does fails with the reset.
func TestBusyShareTriedAgain(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	front := func(resets int) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { l.Close(); wg.Wait() })
		wg.Go(func() {
			for n := 0; ; n++ {
				c, err := l.Accept()
				if err != nil {
					return
				}
				if resets < 0 || n < resets {
					_ = c.(*net.TCPConn).SetLinger(0)
					c.Close()
					continue
				}
				b, err := net.Dial("tcp", s.Addr)
				if err != nil {
					c.Close()
					continue
				}
				wg.Go(func() { _, _ = io.Copy(b, c); b.Close() })
				wg.Go(func() { _, _ = io.Copy(c, b); c.Close() })
				t.Cleanup(func() { c.Close(); b.Close() })
			}
		})
		return l.Addr().String()
	}
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	peer.Addrs = []string{front(busyTries - 1)}
	if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
		t.Fatalf("a share that reset %d connections before login: %v; want the next one used", busyTries-1, err)
	}
	always := peers.Peer{ID: "busy", Name: "busy", Addrs: []string{front(-1)}, HostKeyFingerprint: peer.HostKeyFingerprint}
	_, err := p.Lstat(context.Background(), always, "")
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("a share that resets every connection: %v; want the reset", err)
	}
}
