//go:build linux

package share

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"github.com/dsftp/dsftp/share/loglimit"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// attackerAddr is the source of the tests' attackers; the real clients
// come from 127.0.0.1 (all of 127/8 is loopback on Linux).
const attackerAddr = "127.0.0.2"

// dialFromAddr opens a TCP connection to addr from local.
func dialFromAddr(local, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return d.Dial("tcp", addr)
}

// slowloris holds n connections to addr from local that never send a
// byte, re-opening each as soon as the server drops it, until stop.
// It counts the connections it opened.
func slowloris(local, addr string, n int, stop <-chan struct{}) (wait func(), opened *atomic.Int64) {
	opened = &atomic.Int64{}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := dialFromAddr(local, addr)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				done := make(chan struct{})
				go func() {
					select {
					case <-stop:
					case <-done:
					}
					c.Close()
				}()
				_, _ = io.Copy(io.Discard, c) // until the server drops it
				close(done)
				// Re-open at once, as the attack does (a short pause
				// keeps this test from eating the shared CPUs).
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return wg.Wait, opened
}

// TestSlowloris: 32 silent connections from one address, re-opened as soon
// as they are dropped, do not keep real logins out (before the pre-login
// limits, 0 of 30 got in). The attacker's own newer connections push its
// silent ones out; the log sums them up (the program's log limiter)
// rather than writing a line each.
func TestSlowloris(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.VersionGrace = time.Second })
	start := time.Now()
	stop := make(chan struct{})
	wait, opened := slowloris(attackerAddr, ts.addr, 32, stop)
	defer func() { close(stop); wait() }()
	testenv.WaitFor(t, 10*time.Second, "the slowloris to fill its slots", func() bool { return opened.Load() >= 32 })

	const logins = 10
	ok := 0
	for i := range logins {
		out, err := ts.sftpBatch(t, t.TempDir(), "ls /\n")
		if err == nil && strings.Contains(out, "a.txt") {
			ok++
		} else {
			t.Logf("login %d during the slowloris: %v\n%s", i, err, out)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the dropped silent connections to be summed up", func() bool {
		return summaryFrom(attackerAddr).MatchString(ts.logs.String())
	})
	t.Logf("slowloris: %d of %d real logins succeeded; the attacker opened %d connections", ok, logins, opened.Load())
	if ok < 9 {
		t.Errorf("only %d of %d real logins succeeded during the slowloris; want at least 9", ok, logins)
	}
	log := ts.logs.String()
	// At most DefaultBurst lines and a summary per reason (4 can apply
	// to one address) and window, however many connections.
	windows := int(time.Since(start)/testLogWindow) + 1
	if n := strings.Count(log, "msg=\"connection refused"); n > 4*(loglimit.DefaultBurst+1)*windows {
		t.Errorf("%d 'connection refused' lines for %d connections in %d log windows; want them summarised", n, opened.Load(), windows)
	}
	if n := strings.Count(log, "msg=\"connection closed without login"); n > 3*(loglimit.DefaultBurst+1)*windows {
		t.Errorf("%d 'connection closed without login' lines for %d connections in %d log windows; want them summarised", n, opened.Load(), windows)
	}
	if !strings.Contains(log, "silent connection dropped to make room") {
		t.Error("no silent connection gave way to a newer one")
	}
}

// summaryFrom matches the log limiter's summary line of events from the
// source addr.
func summaryFrom(addr string) *regexp.Regexp {
	return regexp.MustCompile(`more like this in the last 2s\)" .*(remote|source)=` + regexp.QuoteMeta(addr) + ` `)
}

// allowAll accepts every key, as a LAN share does for anyone who announces
// one.
type allowAll struct{}

func (allowAll) AuthorizedKey(ssh.PublicKey) (string, bool) { return "anyone", true }

// TestIdleLoggedInFlood: 70 logged-in connections with one key that do
// nothing get at most MaxConnsPerKey served; 70 more with a fresh key
// each, from the same address, at most MaxConnsPerSource in all; real
// logins with other keys from elsewhere still get in.
func TestIdleLoggedInFlood(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.Authorizer = allowAll{} })
	var held []*ssh.Client
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	served := 0
	flood := func(key func() ssh.Signer) {
		for range 70 {
			c, err := ts.dialFrom(t, attackerAddr, ssh.PublicKeys(key()))
			if err != nil {
				continue
			}
			held = append(held, c)
			// Logged in; is it served? (An SFTP session answers.)
			if sc, err := sftp.NewClient(c); err == nil {
				served++
				_ = sc // left open and idle
			}
		}
	}
	one := testenv.NewSigner(t)
	flood(func() ssh.Signer { return one })
	t.Logf("idle flood, one key: %d of 70 connections served", served)
	if served > DefaultMaxConnsPerKey {
		t.Errorf("%d connections with one key served; cap is %d", served, DefaultMaxConnsPerKey)
	}
	flood(func() ssh.Signer { return testenv.NewSigner(t) })
	t.Logf("idle flood, then a fresh key each: %d of 140 connections from one address served", served)
	if served > DefaultMaxConnsPerSource {
		t.Errorf("%d connections from one address served; cap is %d", served, DefaultMaxConnsPerSource)
	}
	for i := range 3 {
		out, err := ts.sftpBatch(t, t.TempDir(), "ls /\n")
		if err != nil || !strings.Contains(out, "a.txt") {
			t.Errorf("real login %d during the idle flood: %v\n%s", i, err, out)
		}
	}
	if !strings.Contains(ts.logs.String(), limits.ErrKeyConns.Error()) || !strings.Contains(ts.logs.String(), limits.ErrSourceConns.Error()) {
		t.Error("the refusals do not say which cap was hit")
	}
}

// TestIdleTimeout: a logged-in connection with nothing open is closed
// after IdleTimeout; one with an open file is not.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, testIdleTimeout)
}

// testIdleTimeout runs in a bubble: the idle timeout passes on its clock.
func testIdleTimeout(t *testing.T) {
	f := newFixture(t, false)
	ts := startPipeShare(t, f.share, func(o *Options) { o.IdleTimeout = 500 * time.Millisecond })
	busy := ts.sftpClient(t)
	fh, err := busy.Open("a.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	idle, err := ts.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	closed := make(chan error, 1)
	go func() { closed <- idle.Wait() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("idle connection still open 20 s after a 500 ms idle timeout")
	}
	if _, err := fh.Stat(); err != nil {
		t.Errorf("connection with an open file was closed: %v", err)
	}
}

// TestManyInFlightNotRead: a client that queues reads without reading the
// replies, then vanishes, leaves the server serving: the next login reads
// the whole file.
func TestManyInFlightNotRead(t *testing.T) {
	f := newFixture(t, false)
	ts := startTestShare(t, f.share, func(o *Options) { o.MaxRequestsPerConn = 4 })
	c, err := ts.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	stats := floodReads(t, c, "/sub/deeper/random.bin", 2, 500, 2*time.Second)
	t.Logf("flood: %s", stats)
	c.Close()
	sc := ts.sftpClient(t)
	if _, err := readAllRemote(sc, "/sub/deeper/random.bin"); err != nil {
		t.Fatalf("read after the flood: %v", err)
	}
}

// floodReads opens sessions on c, opens path in each and sends reads of
// 256 KiB without ever reading a reply, for at most d. It returns how
// many reads were written. Sessions stay open until d has passed.
func floodReads(t testing.TB, c *ssh.Client, path string, sessions, reads int, d time.Duration) string {
	t.Helper()
	var sent, opened atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range sessions {
		ch, in, err := c.OpenChannel("session", nil)
		if err != nil {
			continue // over MaxSessionsPerConn
		}
		go ssh.DiscardRequests(in)
		ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
		if err != nil || !ok {
			ch.Close()
			continue
		}
		opened.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			go func() { <-ctx.Done(); ch.Close() }()
			// INIT, then OPEN; read just their replies.
			if _, err := ch.Write(sftpPacket(1, nil, u32(3))); err != nil {
				return
			}
			if _, err := readSFTPPacket(ch); err != nil {
				return
			}
			if _, err := ch.Write(sftpPacket(3, u32(1), sshString(path), u32(1), u32(0))); err != nil {
				return
			}
			reply, err := readSFTPPacket(ch)
			if err != nil || len(reply) < 9 || reply[0] != 102 {
				return
			}
			handle := reply[5:] // after type and id: the handle string (length + bytes)
			for i := range reads {
				id := uint32(i + 2)
				off := uint64(i%12) * 256 << 10
				pkt := sftpPacket(5, u32(id), handle, u64(off), u32(256<<10))
				if _, err := ch.Write(pkt); err != nil {
					return
				}
				sent.Add(1)
			}
			<-ctx.Done() // hold the session, never reading
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d sessions, %d reads of 256 KiB sent without reading replies", opened.Load(), sent.Load())
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func u64(v uint64) []byte { return append(u32(uint32(v>>32)), u32(uint32(v))...) }
func sshString(s string) []byte {
	return append(u32(uint32(len(s))), s...)
}

// sftpPacket frames an SFTP packet of type typ.
func sftpPacket(typ byte, parts ...[]byte) []byte {
	body := []byte{typ}
	for _, p := range parts {
		body = append(body, p...)
	}
	return append(u32(uint32(len(body))), body...)
}

// readSFTPPacket reads one SFTP packet (type byte first).
func readSFTPPacket(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint32(h[0])<<24 | uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])
	if n > 1<<20 {
		return nil, fmt.Errorf("sftp packet of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}
