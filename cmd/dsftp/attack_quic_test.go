//go:build linux

package main

// Attacks on the UDP side of a real `dsftp share` (its QUIC endpoint,
// peers/punch), from test code with quic-go and raw UDP sockets on
// several loopback source addresses (127.0.0.x): handshakes and
// connections that go silent, floods, and one source asking for more
// than its share. Throughout, a member (bob) logs in over QUIC the way
// the pool does on a punched path (a punch.Endpoint dials, one SSH
// connection per stream) and reads a file.

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/ssh"
)

const quicHello = "hello over QUIC\n"

// quicTarget is alice's share with QUIC on, and bob, a member whose
// advert carries his key and his UDP address.
type quicTarget struct {
	p       *testenv.Process
	udp     netip.AddrPort
	id      string
	hostKey ssh.PublicKey
	bob     *fakeMember
	bobEP   *punch.Endpoint
}

// startQUICTarget starts alice's share (logging JSON) and bob, and waits
// until bob can read over QUIC.
func startQUICTarget(t *testing.T) *quicTarget {
	t.Helper()
	f := newFakeDiscord(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(quicHello), 0o644); err != nil {
		t.Fatal(err)
	}
	p, port := startDiscordShare(t, f, f.bot(), "alice", dir, "--log-json")
	p.WaitOutput(t, "share listening on UDP (QUIC)", 10*time.Second)
	alice, _ := f.advertOf("alice")
	if alice == nil {
		t.Fatal("no advert of alice's")
	}
	bob := newFakeMember(t, f, "bob")
	ep, err := punch.Listen("127.0.0.1:0", punch.Config{ID: bob.fingerprint(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	bob.advertiseUDP(t, []string{"127.0.0.1:1"}, []string{ep.Addr().String()})
	tg := &quicTarget{p: p, udp: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		id: ssh.FingerprintSHA256(alice.HostKey), hostKey: alice.HostKey, bob: bob, bobEP: ep}
	testenv.WaitFor(t, 15*time.Second, "bob to read alice's share over QUIC", func() bool {
		_, err := tg.login(5 * time.Second)
		return err == nil
	})
	return tg
}

// login is one of bob's logins over a new QUIC connection: handshake,
// stream, SSH login, read hello.txt. It returns how long that took.
func (tg *quicTarget) login(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path, err := tg.bobEP.Dial(ctx, tg.udp, tg.id)
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
		User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(tg.bob.client)},
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

// loginStats are how bob's logins during an attack went.
type loginStats struct {
	ok, attempts int
	slowest      time.Duration // from the first attempt to the read
}

func (l loginStats) String() string {
	return fmt.Sprintf("bob logged in %d times in %d attempts, slowest %v", l.ok, l.attempts, l.slowest.Round(time.Millisecond))
}

// logins has bob log in n times, spaced by gap; a failed attempt is tried
// again, as the pool does, for up to retry (0: once).
func (tg *quicTarget) logins(t *testing.T, n int, gap, retry time.Duration) loginStats {
	t.Helper()
	var st loginStats
	for i := range n {
		start := time.Now()
		for {
			st.attempts++
			_, err := tg.login(15 * time.Second)
			if err == nil {
				st.ok++
				st.slowest = max(st.slowest, time.Since(start))
				break
			}
			t.Logf("bob's login %d over QUIC after %v: %v", i, time.Since(start).Round(time.Millisecond), err)
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

// logRecords counts the share's --log-json records written after the
// output's first from bytes, in all and by message.
func (tg *quicTarget) logRecords(from int) (int, map[string]int) {
	ls := jsonLogs(tg.p.Output.String()[from:])
	by := map[string]int{}
	for _, l := range ls {
		by[fmt.Sprint(l["msg"])]++
	}
	return len(ls), by
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

// counts tallies outcomes, in all and per source.
type counts struct {
	mu       sync.Mutex
	total    [3]int
	bySource map[netip.Addr]*[3]int
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
	return fmt.Sprintf("%d taken, %d refused, %d neither, from %d sources", c.total[taken], c.total[refused], c.total[failed], len(c.bySource))
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
	}
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

// advertiseUDP posts the member's advert with UDP candidates as well.
func (m *fakeMember) advertiseUDP(t testing.TB, addrs, udp []string) {
	t.Helper()
	m.seq++
	now := time.Now()
	text, err := advert.Encode(advert.Advert{
		Name: m.name, Addrs: addrs, UDP: udp, Guild: m.f.guild, Channel: m.f.channel,
		ClientKeys: []string{advert.MarshalKey(m.client.PublicKey())}, Instance: m.inst, Seq: m.seq,
		Issued: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
	}, m.host)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.f.Post(m.token, m.f.channel, text)
	if err != nil {
		t.Fatal(err)
	}
	m.msgs = append(m.msgs, id)
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
// and reads a file during each attack (before the stranger cap: 0 of 5
// logins in each; in the third attack the share's pre-login limits, the
// same as over TCP, may drop a login, which is tried again).
func TestAttackQUICSilent(t *testing.T) {
	tg := startQUICTarget(t)
	a := newQUICAttacker(tg)
	from := len(tg.p.Output.String())
	start := tg.usage(t)
	srcs := sources(10, 24)

	phase := func(name string, n int, attempt func(netip.Addr, <-chan struct{}, *counts), perSource int, retry time.Duration) {
		before := tg.usage(t)
		stop := make(chan struct{})
		var c counts
		wait := attackFrom(t, srcs, n, stop, &c, attempt)
		time.Sleep(time.Second)
		bob := tg.logins(t, 5, 200*time.Millisecond, retry)
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
	}, 8, 15*time.Second)

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
// these attacks.
const quicAttackMemory = 128 << 20

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
