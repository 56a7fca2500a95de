//go:build linux

package main

// Attacks on the UDP side of a real `dsftp share` (its QUIC endpoint,
// peers/punch), from test code with quic-go and raw UDP sockets on
// several loopback source addresses (127.0.0.x): handshakes and
// connections that go silent, floods, and one source asking for more
// than its share. Throughout, a member (bob) logs in over QUIC the way
// the pool does on a punched path (a punch.Endpoint dials, one SSH
// connection per stream) and reads a file; in TestAttackQUICRealMount,
// in a network namespace, bob is a real `dsftp mount` whose only route
// to the share is a punched QUIC path.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"
)

const quicHello = "hello over QUIC\n"

// quicTarget is alice's share with QUIC on, and bob, a member whose
// advert carries his key and his UDP address.
type quicTarget struct {
	t       *testing.T
	f       *fakeDiscord
	p       *testenv.Node
	udp     netip.AddrPort
	id      string
	hostKey ssh.PublicKey
	bob     *quicMember
}

// quicMember is a member that reads alice's share over QUIC from its own
// endpoint, as the pool does on a punched path.
type quicMember struct {
	*fakeMember
	ep *punch.Endpoint
}

// startQUICTarget starts alice's share (logging JSON) and bob on
// 127.0.0.1, and waits until bob can read over QUIC.
func startQUICTarget(t *testing.T) *quicTarget {
	t.Helper()
	f := newFakeDiscord(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(quicHello), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, f.bot())}, "share", dir, "--listen", "127.0.0.1:0", "--name", "alice")
	p.WaitRecord(t, 60*time.Second, "advertising in Discord")
	p.WaitRecord(t, 10*time.Second, "share listening on UDP (QUIC)")
	port, _ := p.ShareReady(t)
	alice, _ := f.advertOf("alice")
	if alice == nil {
		t.Fatal("no advert of alice's")
	}
	tg := &quicTarget{t: t, f: f, p: p, udp: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		id: ssh.FingerprintSHA256(alice.HostKey), hostKey: alice.HostKey}
	tg.bob = tg.member("bob", source(1))
	return tg
}

// member starts a member reading from ip, advertises it with its UDP
// address, and waits until it can read over QUIC.
func (tg *quicTarget) member(name string, ip netip.Addr) *quicMember {
	t := tg.t
	t.Helper()
	m := &quicMember{fakeMember: newFakeMember(t, tg.f, name)}
	ep, err := punch.Listen(netip.AddrPortFrom(ip, 0).String(), punch.Config{ID: m.fingerprint(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	m.ep = ep
	m.post(t, advert.Advert{Addrs: []string{"127.0.0.1:1"}, UDP: []string{ep.Addr().String()}})
	testenv.WaitFor(t, 15*time.Second, name+" to read alice's share over QUIC", func() bool {
		_, err := tg.login(m, 5*time.Second)
		return err == nil
	})
	return m
}

// login is one of m's logins over a new QUIC connection: handshake,
// stream, SSH login, read hello.txt. It returns how long that took.
func (tg *quicTarget) login(m *quicMember, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path, err := m.ep.Dial(ctx, tg.udp, tg.id)
	if err != nil {
		return 0, err
	}
	defer path.Close()
	c, err := path.OpenStream(ctx)
	if err != nil {
		return 0, err
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	sc, chans, reqs, err := ssh.NewClientConn(c, tg.udp.String(), &ssh.ClientConfig{
		User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(m.client)},
		HostKeyCallback: ssh.FixedHostKey(tg.hostKey),
	})
	if err != nil {
		c.Close()
		return 0, fmt.Errorf("log in over QUIC: %w", err)
	}
	cl := ssh.NewClient(sc, chans, reqs)
	defer cl.Close()
	s, err := sftp.NewClient(cl)
	if err != nil {
		return 0, fmt.Errorf("start SFTP: %w", err)
	}
	defer s.Close()
	f, err := s.Open("/hello.txt")
	if err != nil {
		return 0, fmt.Errorf("open hello.txt: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || string(b) != quicHello {
		return 0, fmt.Errorf("read hello.txt: %q, %v", b, err)
	}
	return time.Since(start), nil
}

// loginStats are how a member's logins during an attack went.
type loginStats struct {
	name         string
	ok, attempts int
	slowest      time.Duration // from the first attempt to the read
}

func (l loginStats) String() string {
	return fmt.Sprintf("%s logged in %d times in %d attempts, slowest %v", l.name, l.ok, l.attempts, l.slowest.Round(time.Millisecond))
}

// logins has m log in n times, spaced by gap; a failed attempt is tried
// again, as the pool does, for up to retry (0: once).
func (tg *quicTarget) logins(t *testing.T, m *quicMember, n int, gap, retry time.Duration) loginStats {
	t.Helper()
	st := loginStats{name: m.name}
	for i := range n {
		start := time.Now()
		for {
			st.attempts++
			_, err := tg.login(m, 8*time.Second)
			if err == nil {
				st.ok++
				st.slowest = max(st.slowest, time.Since(start))
				break
			}
			t.Logf("%s's login %d over QUIC after %v: %v", m.name, i, time.Since(start).Round(time.Millisecond), err)
			if time.Since(start) >= retry {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(gap)
	}
	return st
}

// usage is the share process's memory and CPU time at one moment.
type usage struct {
	rss, hwm int64
	cpu      time.Duration
	at       time.Time
}

func (tg *quicTarget) usage(t *testing.T) usage {
	t.Helper()
	pid := tg.p.Cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return usage{rss: vmStatus(t, pid, "VmRSS"), hwm: vmStatus(t, pid, "VmHWM"),
		cpu: time.Duration(ut+st) * 10 * time.Millisecond, at: time.Now()}
}

// cpuShare is the share's CPU use between two moments, in cores.
func cpuShare(a, b usage) float64 { return (b.cpu - a.cpu).Seconds() / b.at.Sub(a.at).Seconds() }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// logRecords counts the share's records after its first from (see
// recordCount), in all and by message.
func (tg *quicTarget) logRecords(from int) (int, map[string]int) {
	return recordsSince(tg.p, from)
}

// quicAttacker dials alice's QUIC endpoint as a stranger: a server name
// addressed to her from an ID of no member, and no certificate checked.
type quicAttacker struct {
	target netip.AddrPort
	tls    *tls.Config
}

func newQUICAttacker(tg *quicTarget) *quicAttacker {
	return &quicAttacker{target: tg.udp, tls: &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{punch.ALPN},
		ServerName: punch.ServerName(tg.id, randomFingerprint()), InsecureSkipVerify: true,
	}}
}

// source is 127.0.0.i, one attacker address.
func source(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}) }

// outcome is what one attacker's attempt got.
type outcome int

const (
	failed  outcome = iota // neither: timed out, or an error other than a refusal
	taken                  // the server kept state for it
	refused                // CONNECTION_REFUSED
)

func isRefused(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode == quic.ConnectionRefused
}

// counts tallies outcomes, in all and per source, and the connections
// the share closed.
type counts struct {
	mu       sync.Mutex
	total    [3]int
	bySource map[netip.Addr]*[3]int
	closed   int
}

func (c *counts) closedByShare() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
}

func (c *counts) add(src netip.Addr, o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bySource == nil {
		c.bySource = map[netip.Addr]*[3]int{}
	}
	if c.bySource[src] == nil {
		c.bySource[src] = &[3]int{}
	}
	c.total[o]++
	c.bySource[src][o]++
}

// maxTaken is the most one source got taken.
func (c *counts) maxTaken() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := 0
	for _, s := range c.bySource {
		m = max(m, s[taken])
	}
	return m
}

func (c *counts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d taken, %d refused, %d neither, from %d sources; %d closed by the share", c.total[taken], c.total[refused], c.total[failed], len(c.bySource), c.closed)
}

// socket opens a UDP socket on src.
func socket(src netip.Addr) (*net.UDPConn, error) {
	return net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
}

// stallHandshake passes Retry from src, sends its ClientHello and stops
// where the client checks the server's certificate: the server waits for
// a Finished that never comes. It holds on until stop, and reports
// whether the server answered with its handshake (state kept) or refused.
func (a *quicAttacker) stallHandshake(src netip.Addr, stop <-chan struct{}, c *counts) {
	uc, err := socket(src)
	if err != nil {
		c.add(src, failed)
		return
	}
	tr := &quic.Transport{Conn: uc}
	defer uc.Close()
	defer tr.Close()
	answered := make(chan struct{})
	conf := a.tls.Clone()
	conf.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
		close(answered)
		<-stop
		return errors.New("stalled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(a.target), conf, &quic.Config{HandshakeIdleTimeout: time.Minute})
		res <- err
	}()
	select {
	case <-answered:
		c.add(src, taken)
	case err := <-res:
		if isRefused(err) {
			c.add(src, refused)
		} else {
			c.add(src, failed)
		}
		return
	case <-time.After(10 * time.Second):
		c.add(src, failed)
	}
	<-res
}

// answers reports whether the share answers a new handshake from src
// (rather than refusing it); the probe then gives up at once.
func (a *quicAttacker) answers(src netip.Addr) bool {
	uc, err := socket(src)
	if err != nil {
		return false
	}
	tr := &quic.Transport{Conn: uc}
	defer uc.Close()
	defer tr.Close()
	var answered atomic.Bool
	conf := a.tls.Clone()
	conf.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
		answered.Store(true)
		return errors.New("probe only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = tr.Dial(ctx, net.UDPAddrFromAddrPort(a.target), conf, &quic.Config{})
	return answered.Load()
}

// connect completes a handshake from src and keeps the connection alive
// with keep-alives until stop, calling use on it first; it counts it as
// taken or refused.
func (a *quicAttacker) connect(src netip.Addr, stop <-chan struct{}, c *counts, use func(*quic.Conn)) {
	uc, err := socket(src)
	if err != nil {
		c.add(src, failed)
		return
	}
	tr := &quic.Transport{Conn: uc}
	defer uc.Close()
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(a.target), a.tls,
		&quic.Config{KeepAlivePeriod: 5 * time.Second, MaxIdleTimeout: time.Minute})
	switch {
	case isRefused(err):
		c.add(src, refused)
		return
	case err != nil:
		c.add(src, failed)
		return
	}
	c.add(src, taken)
	defer qc.CloseWithError(0, "")
	if use != nil {
		use(qc)
	}
	select {
	case <-stop:
	case <-qc.Context().Done():
		c.closedByShare()
	}
}

// churn keeps n connections from src that open no stream, dialing again
// as soon as one ends, until stop.
func (a *quicAttacker) churn(src netip.Addr, n int, stop <-chan struct{}, c *counts) (wait func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				a.connect(src, stop, c, nil)
				time.Sleep(5 * time.Millisecond) // spares the shared CPUs
			}
		})
	}
	return wg.Wait
}

// attackFrom starts n attempts from each of the sources at once, each
// holding what it got until stop, and returns once all have been counted.
func attackFrom(t *testing.T, sources []netip.Addr, n int, stop <-chan struct{}, c *counts,
	attempt func(netip.Addr, <-chan struct{}, *counts)) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for _, src := range sources {
		for range n {
			wg.Go(func() { attempt(src, stop, c) })
		}
	}
	testenv.WaitFor(t, 30*time.Second, "every attempt to be counted", func() bool { return c.n() == len(sources)*n })
	return wg.Wait
}

func (c *counts) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total[0] + c.total[1] + c.total[2]
}

// sources are n attacker addresses from 127.0.0.first on.
func sources(first, n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, source(first+i))
	}
	return out
}

// silentStreams opens every stream the connection allows: half send one
// byte of a version line and stall, half send the version line and stall
// before the key exchange.
func silentStreams(qc *quic.Conn) {
	for i := 0; ; i++ {
		s, err := qc.OpenStream()
		if err != nil {
			return // at the connection's stream limit
		}
		msg := "S"
		if i%2 == 1 {
			msg = "SSH-2.0-OpenSSH_9.6\r\n"
		}
		if _, err := s.Write([]byte(msg)); err != nil {
			return
		}
		go io.Copy(io.Discard, s)
	}
}

// TestAttackQUICSilent: strangers from 24 loopback addresses hold QUIC
// handshakes that passed Retry and stalled, then connections that never
// open a stream, then connections whose 16 streams each stall before the
// SSH version line or right after it. The share keeps at most 32
// handshakes and 32 connections of strangers (4 and 8 per source), its
// memory stays bounded, its log too, and bob, a member, logs in over QUIC
// and reads a file at the first attempt, 5 times during each attack
// (before the strangers' cap: 0 of 5 in each; before members' streams had
// a pre-login budget of their own, the strangers' silent streams made the
// share drop up to 24 of 29 of bob's attempts).
func TestAttackQUICSilent(t *testing.T) {
	tg := startQUICTarget(t)
	a := newQUICAttacker(tg)
	from := recordCount(tg.p)
	start := tg.usage(t)
	srcs := sources(10, 24)

	phase := func(name string, n int, attempt func(netip.Addr, <-chan struct{}, *counts), perSource int, retry time.Duration) {
		before := tg.usage(t)
		stop := make(chan struct{})
		var c counts
		wait := attackFrom(t, srcs, n, stop, &c, attempt)
		time.Sleep(time.Second)
		bob := tg.logins(t, tg.bob, 5, 200*time.Millisecond, retry)
		during := tg.usage(t)
		close(stop)
		wait()
		t.Logf("%s: %v (most from one source: %d); %v; share RSS %s before, %s during (peak %s), CPU %.2f cores",
			name, &c, c.maxTaken(), bob, mib(before.rss), mib(during.rss), mib(during.hwm), cpuShare(before, during))
		if c.total[taken] > quicStrangers || c.maxTaken() > perSource {
			t.Errorf("%s: the share kept %d (at most %d from one source); want at most %d (%d per source)",
				name, c.total[taken], c.maxTaken(), quicStrangers, perSource)
		}
		if c.total[taken] == 0 || c.total[refused] == 0 {
			t.Errorf("%s: %v; the attack did not reach the limits", name, &c)
		}
		if bob.ok < 5 {
			t.Errorf("%s: %v; want 5", name, bob)
		}
	}

	phase("handshakes stalled after Retry", 6, a.stallHandshake, 4, 0)
	time.Sleep(11 * time.Second) // past the 10 s handshake idle timeout
	phase("connections that open no stream", 10, func(src netip.Addr, stop <-chan struct{}, c *counts) {
		a.connect(src, stop, c, nil)
	}, 8, 0)
	phase("connections of silent streams", 10, func(src netip.Addr, stop <-chan struct{}, c *counts) {
		a.connect(src, stop, c, silentStreams)
	}, 8, 0)

	end := tg.usage(t)
	n, by := tg.logRecords(from)
	t.Logf("share RSS %s at the start, %s at the end, peak %s; %d log records: %v", mib(start.rss), mib(end.rss), mib(end.hwm), n, by)
	if grew := end.hwm - start.rss; grew > quicAttackMemory {
		t.Errorf("the share's RSS peaked %s above the start; want at most %s", mib(grew), mib(quicAttackMemory))
	}
	checkLogBound(t, by)
}

// quicStrangers is what the share's QUIC endpoint gives strangers of its
// 64 handshakes and 64 connections (punch.Config.MaxStranger*).
const quicStrangers = 32

// quicAttackMemory bounds the growth of the share's RSS under one of
// these attacks: measured up to 12 MiB, and up to 83 MiB in a build with
// the race detector, whose shadow memory grows with every allocation.
const quicAttackMemory = 192 << 20

// checkLogBound checks the log limiter's bound on records by message:
// 5 a minute for each of 8 identities and once more for the others
// together, in the at most two minutes of the limiter a test spans.
func checkLogBound(t *testing.T, by map[string]int) {
	t.Helper()
	for msg, n := range by {
		if n > 2*9*5 {
			t.Errorf("the share logged %q %d times; want at most %d", msg, n, 2*9*5)
		}
	}
}

// captureConn keeps the first datagram a QUIC client sends, and sends
// nothing.
type captureConn struct {
	net.PacketConn
	once  sync.Once
	first chan []byte
}

func (c *captureConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.once.Do(func() { c.first <- slices.Clone(b) })
	return len(b), nil
}

// initialPacket is a QUIC Initial addressed to the share, as quic-go's
// client sends it first (its ClientHello, padded to a full datagram).
func (a *quicAttacker) initialPacket(t *testing.T) []byte {
	t.Helper()
	// The capturing socket is no *net.UDPConn, which quic-go would print a
	// warning about.
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	uc, err := socket(source(1))
	if err != nil {
		t.Fatal(err)
	}
	cc := &captureConn{PacketConn: uc, first: make(chan []byte, 1)}
	tr := &quic.Transport{Conn: cc}
	defer uc.Close()
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Dial(ctx, net.UDPAddrFromAddrPort(a.target), a.tls, &quic.Config{})
	select {
	case p := <-cc.first:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("quic-go sent no Initial packet")
		return nil
	}
}

// flood sends, from each source, pps datagrams a second to the share
// until stop: the Initial replayed (each asks for a Retry) and garbage of
// the same size, in turns. It returns how many went out.
func (a *quicAttacker) flood(srcs []netip.Addr, pps int, initial []byte, stop <-chan struct{}) (wait func() int64) {
	var wg sync.WaitGroup
	var sent atomic.Int64
	to := net.UDPAddrFromAddrPort(a.target)
	for _, src := range srcs {
		wg.Go(func() {
			uc, err := socket(src)
			if err != nil {
				return
			}
			defer uc.Close()
			lim := rate.NewLimiter(rate.Limit(pps), pps/20+1)
			garbage := randomBytes(len(initial))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if lim.Wait(context.Background()) != nil {
					return
				}
				p := initial
				if i%2 == 1 {
					p = garbage
				}
				if _, err := uc.WriteTo(p, to); err == nil {
					sent.Add(1)
				}
			}
		})
	}
	return func() int64 { wg.Wait(); return sent.Load() }
}

// TestAttackQUICFlood: QUIC Initial packets and garbage datagrams at
// 10,000 a second in all, first from 8 loopback addresses, then from one,
// for 5 s each. bob logs in over QUIC and reads a file during each, and
// the share's memory, CPU use and log stay bounded.
func TestAttackQUICFlood(t *testing.T) {
	tg := startQUICTarget(t)
	a := newQUICAttacker(tg)
	initial := a.initialPacket(t)
	start := tg.usage(t)
	const pps, span = 10000, 5 * time.Second

	for _, srcs := range [][]netip.Addr{sources(10, 8), sources(30, 1)} {
		from := recordCount(tg.p)
		before := tg.usage(t)
		stop := make(chan struct{})
		wait := a.flood(srcs, pps/len(srcs), initial, stop)
		time.Sleep(time.Second)
		bob := tg.logins(t, tg.bob, 5, span/6, 20*time.Second)
		during := tg.usage(t)
		close(stop)
		sent := wait()
		took := during.at.Sub(before.at)
		n, by := tg.logRecords(from)
		t.Logf("flood from %d sources: %d datagrams in %v (%.0f a second); %v; share RSS %s before, %s during (peak %s), CPU %.2f cores; %d log records %v",
			len(srcs), sent, took.Round(100*time.Millisecond), float64(sent)/took.Seconds(), bob,
			mib(before.rss), mib(during.rss), mib(during.hwm), cpuShare(before, during), n, by)
		if sent < int64(pps*span.Seconds()/2) {
			t.Errorf("only %d datagrams sent; the flood did not flood", sent)
		}
		if bob.ok < 5 {
			t.Errorf("flood from %d sources: %v; want 5", len(srcs), bob)
		}
		if n > quicFloodLogs {
			t.Errorf("flood from %d sources: the share logged %d records; want at most %d", len(srcs), n, quicFloodLogs)
		}
		if c := cpuShare(before, during); c > quicFloodCPU {
			t.Errorf("flood from %d sources: the share used %.2f cores; want at most %.1f", len(srcs), c, quicFloodCPU)
		}
	}
	end := tg.usage(t)
	t.Logf("share RSS %s at the start, %s at the end, peak %s", mib(start.rss), mib(end.rss), mib(end.hwm))
	if grew := end.hwm - start.rss; grew > quicAttackMemory {
		t.Errorf("the share's RSS peaked %s above the start; want at most %s", mib(grew), mib(quicAttackMemory))
	}
}

// quicFloodCPU bounds the share's CPU use under the flood, in cores: 5
// times what the race detector's build measured (0.4).
const quicFloodCPU = 2.0

// quicFloodLogs bounds the records a flood of packets that never make a
// connection may cause: bob's logins, none for the flood itself.
const quicFloodLogs = 5 * 4

// versionLines opens every stream one connection from src allows, sends
// an SSH version line on each and counts the streams the share answered
// with its own (let in to log in) and those it closed without.
func (a *quicAttacker) versionLines(t *testing.T, src netip.Addr) (opened, answered, closed int) {
	t.Helper()
	uc, err := socket(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: uc}
	defer uc.Close()
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(a.target), a.tls, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	var streams []*quic.Stream
	for {
		s, err := qc.OpenStream()
		if err != nil {
			var limit *quic.StreamLimitReachedError
			if !errors.As(err, &limit) {
				t.Fatalf("open stream %d: %v", len(streams)+1, err)
			}
			break
		}
		if _, err := s.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			s.SetReadDeadline(time.Now().Add(4 * time.Second))
			buf := make([]byte, 8)
			_, err := io.ReadFull(s, buf)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && string(buf) == "SSH-2.0-":
				answered++
			case errors.Is(err, os.ErrDeadlineExceeded):
			default:
				closed++
			}
		})
	}
	wg.Wait()
	return len(streams), answered, closed
}

// TestAttackQUICPerSource: one source cannot take more than its share.
// From one address: 10 stalled handshakes at once, of which the share
// keeps 4; 12 connections one after the other, each using a stream, of
// which it keeps 8; on one connection, 16 streams (the 17th cannot be opened), of which
// the share's pre-login limit for one source lets 8 log in, as over TCP.
// A source whose streams stay silent is penalised by the share and then
// refused at the QUIC handshake too. bob logs in from another address
// meanwhile. carol, a member behind the
// same address as an attacker who keeps 8 connections that open no
// stream (dialing again whenever one ends), logs in 5 times: each time
// her connection takes the place of an idle one (before: refused).
func TestAttackQUICPerSource(t *testing.T) {
	tg := startQUICTarget(t)
	a := newQUICAttacker(tg)
	from := recordCount(tg.p)

	stop := make(chan struct{})
	var hs counts
	held := time.Now()
	wait := attackFrom(t, sources(50, 1), 10, stop, &hs, a.stallHandshake)
	bob := tg.logins(t, tg.bob, 3, 100*time.Millisecond, 0)
	// The stalled handshakes end on the share's side, freeing the
	// source's slots, within the handshake timeout.
	testenv.WaitFor(t, 30*time.Second, "the share to answer the stalled source again", func() bool {
		if a.answers(source(50)) {
			return true
		}
		time.Sleep(500 * time.Millisecond)
		return false
	})
	freed := time.Since(held)
	close(stop)
	wait()
	t.Logf("stalled handshakes from one source: %v; %v; the source was answered again after %v", &hs, bob, freed.Round(100*time.Millisecond))
	if hs.total[taken] != 4 || hs.total[refused] != 6 {
		t.Errorf("stalled handshakes from one source: %v; want 4 taken, 6 refused", &hs)
	}
	if bob.ok < 3 {
		t.Errorf("during stalled handshakes from one source: %v; want 3", bob)
	}
	if freed > 21*time.Second {
		t.Errorf("the stalled handshakes held the source's slots for %v; want at most 20 s", freed)
	}

	opened, answered, closed := a.versionLines(t, source(51))
	t.Logf("streams on one connection: %d opened (the next refused by the stream limit), %d answered with a version line, %d closed", opened, answered, closed)
	if opened != 16 {
		t.Errorf("opened %d streams on one connection; want 16", opened)
	}
	if answered > 8 || answered == 0 || closed < opened-8 {
		t.Errorf("%d of %d streams from one source answered, %d closed; want 1 to 8 (the pre-login limit per source), the rest closed", answered, opened, closed)
	}

	// A source the share penalises for silent logins is refused at the
	// QUIC handshake as well.
	penalised := source(54)
	silentFrom := time.Now()
	stop = make(chan struct{})
	var pc counts
	wait = attackFrom(t, []netip.Addr{penalised}, 1, stop, &pc, func(src netip.Addr, stop <-chan struct{}, c *counts) {
		a.connect(src, stop, c, func(qc *quic.Conn) {
			for range 4 {
				if s, err := qc.OpenStream(); err == nil {
					s.Write([]byte("S"))
				}
			}
		})
	})
	testenv.WaitFor(t, 20*time.Second, "the share to refuse the silent source's handshakes", func() bool {
		if !a.answers(penalised) {
			return true
		}
		time.Sleep(500 * time.Millisecond)
		return false
	})
	close(stop)
	wait()
	t.Logf("a source whose 4 streams stayed silent: %v; its handshakes were refused %v after it connected", &pc, time.Since(silentFrom).Round(100*time.Millisecond))
	if !a.answers(source(55)) {
		t.Error("the share refused a handshake from an address it does not penalise")
	}

	// One after the other, so that the 4 handshakes a source may have in
	// progress are not what refuses them.
	stop = make(chan struct{})
	var cs counts
	var holders sync.WaitGroup
	for i := range 12 {
		holders.Go(func() {
			a.connect(source(52), stop, &cs, func(qc *quic.Conn) {
				if s, err := qc.OpenStream(); err == nil {
					s.Write([]byte("S"))
				}
			})
		})
		testenv.WaitFor(t, 15*time.Second, "the connection to be counted", func() bool { return cs.n() == i+1 })
	}
	close(stop)
	holders.Wait()
	t.Logf("connections with a stream from one source: %v", &cs)
	if cs.total[taken] != 8 || cs.total[refused] != 4 {
		t.Errorf("connections with a stream from one source: %v; want 8 taken, 4 refused", &cs)
	}

	carolAddr := source(53)
	carol := tg.member("carol", carolAddr)
	stop = make(chan struct{})
	var idle counts
	wait = a.churn(carolAddr, 8, stop, &idle)
	testenv.WaitFor(t, 15*time.Second, "the attacker to hold carol's address's 8 connections", func() bool {
		idle.mu.Lock()
		defer idle.mu.Unlock()
		return idle.total[taken]-idle.closed >= 8
	})
	time.Sleep(time.Second) // past the idle grace
	ca := tg.logins(t, carol, 5, 200*time.Millisecond, 20*time.Second)
	close(stop)
	wait()
	t.Logf("attacker on carol's address: %v; %v", &idle, ca)
	if ca.ok < 5 {
		t.Errorf("beside an attacker on her address: %v; want 5", ca)
	}
	n, by := tg.logRecords(from)
	t.Logf("%d log records: %v", n, by)
	checkLogBound(t, by)
}

// attackerEnv, set to "HOST:PORT FINGERPRINT", makes this test binary the
// attacker of TestAttackQUICRealMount instead of running tests: it runs
// inside the test's network namespace, where test code cannot move.
const attackerEnv = "DSFTP_QUIC_ATTACKER"

func init() {
	if spec := os.Getenv(attackerEnv); spec != "" {
		os.Exit(runQUICAttacker(spec))
	}
}

// runQUICAttacker attacks from 24 loopback addresses at once, until it is
// killed: 8 hold handshakes stalled after Retry (4 each, again as they
// end), 8 hold connections that open no stream (8 each, dialing again as
// one ends), 8 hold connections of silent streams (8 each). It prints
// the tallies every 2 s.
func runQUICAttacker(spec string) int {
	target, id, ok := strings.Cut(spec, " ")
	addr, err := netip.ParseAddrPort(target)
	if !ok || err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: want HOST:PORT FINGERPRINT\n", attackerEnv, spec)
		return 2
	}
	a := &quicAttacker{target: addr, tls: &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{punch.ALPN},
		ServerName: punch.ServerName(id, randomFingerprint()), InsecureSkipVerify: true,
	}}
	never := make(chan struct{})
	var hs, idle, silent counts
	again := func(n int, attempt func()) {
		for range n {
			go func() {
				for {
					t0 := time.Now()
					attempt()
					if time.Since(t0) < time.Second {
						time.Sleep(100 * time.Millisecond) // refused: spares the shared CPUs
					}
				}
			}()
		}
	}
	for i, src := range sources(10, 24) {
		switch i % 3 {
		case 0:
			again(4, func() {
				stop := make(chan struct{})
				time.AfterFunc(12*time.Second, func() { close(stop) })
				a.stallHandshake(src, stop, &hs)
			})
		case 1:
			again(8, func() { a.connect(src, never, &idle, nil) })
		default:
			again(8, func() { a.connect(src, never, &silent, silentStreams) })
		}
	}
	for range time.Tick(2 * time.Second) {
		fmt.Printf("stalled handshakes: %v\nconnections that open no stream: %v\nconnections of silent streams: %v\n", &hs, &idle, &silent)
	}
	return 0
}

// startSTUN runs coturn as a STUN server on 127.0.0.1:3478 in namespace
// ns and returns its address.
func startSTUN(t *testing.T, ns string) string {
	t.Helper()
	bin := testenv.Require(t, "turnserver")[0]
	dir := t.TempDir()
	conf := strings.Join([]string{"listening-port=3478", "listening-ip=127.0.0.1", "stun-only", "fingerprint",
		"no-tls", "no-dtls", "no-cli", "no-software-attribute", "userdb=" + filepath.Join(dir, "turndb"),
		"pidfile=" + filepath.Join(dir, "turnserver.pid"), "log-file=stdout", "simple-log"}, "\n") + "\n"
	f := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartIn(t, ns, nil, bin, "-c", f)
	p.WaitOutput(t, "Total General servers", 15*time.Second)
	return "127.0.0.1:3478"
}

// TestAttackQUICRealMount: in a network namespace of its own, alice's
// share takes the attacks of TestAttackQUICSilent from 24 addresses at
// once, and its TCP port refuses bob, so that only the UDP path is left.
// bob starts a real `dsftp mount` during the attack: it punches a QUIC
// path to alice, logs in over it and reads her files.
func TestAttackQUICRealMount(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	testenv.Require(t, "nsenter", "nft")
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	ns := testenv.NewNetns(t, "quic")
	tokA, tokB := fmt.Sprintf("tokalice%d", os.Getpid()), fmt.Sprintf("tokbob%d", os.Getpid())
	fd := testenv.StartIn(t, ns, nil, fake, "-listen", "127.0.0.1:0", "-bot", tokA, "-bot", tokB)
	fd.WaitOutput(t, `"url"`, 20*time.Second)
	api := regexp.MustCompile(`"url":"([^"]+)"`).FindStringSubmatch(fd.Output.String())[1]
	stun := startSTUN(t, ns)
	env := func(tok string) []string {
		return []string{"DSFTP_DISCORD_TOKEN=" + tok, "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}
	}

	dir := t.TempDir()
	const files = 6
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	alice := testenv.StartNode(t, testenv.NodeOptions{NS: ns, Env: env(tokA)}, "share", dir, "--listen", "127.0.0.1:0", "--name", "alice",
		"--no-upnp", "--stun", stun)
	alice.WaitRecord(t, 60*time.Second, "advertising in Discord")
	sharePort, fp := alice.ShareReady(t)
	port := strconv.Itoa(sharePort)
	// Only the UDP path is left between members: alice's TCP port answers
	// with a reset.
	for _, cmd := range [][]string{
		{"add", "table", "inet", "quicattack"},
		{"add", "chain", "inet", "quicattack", "in", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "quicattack", "in", "tcp", "dport", port, "reject", "with", "tcp", "reset"},
	} {
		testenv.MustRunIn(t, ns, "nft", cmd...)
	}

	pid := alice.Cmd.Process.Pid
	calm := vmStatus(t, pid, "VmRSS")
	from := recordCount(alice)
	attacker := testenv.StartIn(t, ns, []string{attackerEnv + "=127.0.0.1:" + port + " " + fp}, os.Args[0])
	time.Sleep(5 * time.Second)
	before := vmStatus(t, pid, "VmRSS")

	mnt := t.TempDir()
	testenv.CleanupUnmount(t, mnt)
	start := time.Now()
	bob := testenv.StartNode(t, testenv.NodeOptions{NS: ns, NetOnly: true, Env: env(tokB)}, "mount", mnt, "--share", t.TempDir(),
		"--name", "bob", "--no-upnp", "--stun", stun, "--timeout", "10s", "--log-level", "debug")
	var first time.Duration
	testenv.WaitFor(t, 60*time.Second, "bob's mount to read alice's file during the attack", func() bool {
		b, err := os.ReadFile(filepath.Join(mnt, "alice", "f0.txt"))
		if err == nil && string(b) == "file 0\n" {
			first = time.Since(start)
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	var slowest time.Duration
	for i := 1; i < files; i++ {
		t0 := time.Now()
		b, err := os.ReadFile(filepath.Join(mnt, "alice", fmt.Sprintf("f%d.txt", i)))
		if err != nil || string(b) != fmt.Sprintf("file %d\n", i) {
			t.Errorf("bob read alice's f%d.txt during the attack: %q, %v", i, b, err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	during := vmStatus(t, pid, "VmRSS")
	peak := vmStatus(t, pid, "VmHWM")
	tallies := attacker.Output.String()
	if i := strings.LastIndex(tallies, "stalled handshakes:"); i >= 0 {
		tallies = tallies[i:]
	}
	n, by := recordsSince(alice, from)
	t.Logf("bob's mount read alice's first file %v after it started, %d more in at most %v each; alice's RSS %s before the attack, %s 5 s into it, %s during bob's reads (peak %s); the attacker's tallies:\n%s%d log records of alice's: %v",
		first.Round(100*time.Millisecond), files-1, slowest.Round(time.Millisecond), mib(calm), mib(before), mib(during), mib(peak), tallies, n, by)
	if bob.Count("peer reached over a punched QUIC path", "peer", "alice") == 0 {
		t.Error("bob's mount did not reach alice over a punched QUIC path")
	}
	if !strings.Contains(tallies, "refused") || strings.Contains(tallies, " 0 taken") {
		t.Errorf("the attack did not reach the limits:\n%s", tallies)
	}
	if grew := peak - calm; grew > quicAttackMemory {
		t.Errorf("alice's RSS peaked %s above its level before the attack; want at most %s", mib(grew), mib(quicAttackMemory))
	}
	checkLogBound(t, by)
	_ = bob.Stop(t, syscall.SIGTERM, 30*time.Second)
}

// recordCount is the number of records n has written so far.
func recordCount(n *testenv.Node) int {
	return len(n.Where(func(testenv.Record) bool { return true }))
}

// recordsSince counts n's records after its first from, in all and by
// message.
func recordsSince(n *testenv.Node, from int) (int, map[string]int) {
	recs := n.Where(func(testenv.Record) bool { return true })[from:]
	by := map[string]int{}
	for _, r := range recs {
		by[r.Msg]++
	}
	return len(recs), by
}
