//go:build linux

package main

// Attacks on a real `dsftp share` that aim at its log and at a friend who
// shares the attacker's address.

import (
	"bufio"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// freshSigner is a new ed25519 key, made where t cannot be used (the
// flood's goroutines).
func freshSigner() ssh.Signer {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		panic(err)
	}
	return s
}

// randomFingerprint is a well-formed host key fingerprint of no member.
func randomFingerprint() string { return ssh.FingerprintSHA256(freshSigner().PublicKey()) }

// randomBytes is n bytes of garbage, for malformed payloads.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return b
}

// floodOnce sends one random unwanted request of some kind over c (or a
// new connection), as a hostile member would, and reports what it was.
func (m *fakeMember) floodOnce(c *memberConn, port int, hostKey ssh.PublicKey) string {
	switch rand.IntN(8) {
	case 0: // a reverse offer naming someone else's host key
		_, _, _ = c.SendRequest(route.RequestReverse, true, ssh.Marshal(route.ReverseRequest{HostKey: randomFingerprint()}))
		return "reverse offer, bad host key"
	case 1: // a relay to a member nobody knows
		if ch, err := c.openRelay(randomFingerprint()); err == nil {
			ch.Close()
		}
		return "relay to an unknown target"
	case 2: // a dial-back check of addresses the member never advertised
		addrs := "127.0.0.1:" + strconv.Itoa(1+rand.IntN(65000)) + " 10.9.8.7:22"
		_, _, _ = c.SendRequest(route.RequestDialBack, true, ssh.Marshal(route.DialBackRequest{Addrs: addrs}))
		return "dial-back, unadvertised addresses"
	case 3: // malformed payloads
		_, _, _ = c.SendRequest(route.RequestReverse, true, randomBytes(rand.IntN(64)))
		_, _, _ = c.SendRequest(route.RequestDialBack, true, randomBytes(rand.IntN(64)))
		if ch, _, err := c.OpenChannel(route.ChannelRelay, randomBytes(rand.IntN(64))); err == nil {
			ch.Close()
		}
		return "malformed payloads"
	case 4: // channel types the share refuses
		for _, typ := range []string{"direct-tcpip", "x11", route.ChannelShare, route.ChannelSFTP, "auth-agent@openssh.com", hex.EncodeToString(randomBytes(4))} {
			if ch, _, err := c.OpenChannel(typ, randomBytes(rand.IntN(32))); err == nil {
				ch.Close()
			}
		}
		return "refused channel types"
	case 5: // a login with a key of no member
		cfg := &ssh.ClientConfig{User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(freshSigner())},
			HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 5 * time.Second}
		if cl, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cfg); err == nil {
			cl.Close()
		}
		return "login with a wrong key"
	case 6: // a login with its own key, dropped at once
		if mc, err := m.dial(port, hostKey); err == nil {
			mc.Close()
		}
		return "login and leave"
	default: // a session asking for a shell
		if s, err := c.NewSession(); err == nil {
			_ = s.Shell()
			s.Close()
		}
		return "shell request"
	}
}

// TestAttackLogFlood: one member sends random unwanted requests of every
// kind to a real share for 45 s; the share's log holds under 100 lines
// from the flood's start through the minute's summaries (before the
// program-wide log limiter: 47,578).
func TestAttackLogFlood(t *testing.T) {
	// Most of its minute waits for the limiter's summaries: it runs
	// beside the others.
	t.Parallel()
	f := newFakeDiscord(t)
	p, port := startDiscordShare(t, f, f.bot(), "alice", t.TempDir())
	alice, _ := f.advertOf("alice")
	m := newFakeMember(t, f, "mallory")
	m.advertise(t, []string{"127.0.0.1:1"}, false)
	conns := make([]*memberConn, 4)
	for i := range conns {
		conns[i] = m.login(t, port, alice.HostKey)
	}

	const flood = 45 * time.Second
	before := p.Count("")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	var kmu sync.Mutex
	kinds := map[string]int{}
	for _, c := range conns {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := m.floodOnce(c, port, alice.HostKey)
				sent.Add(1)
				kmu.Lock()
				kinds[k]++
				kmu.Unlock()
			}
		})
	}
	start := time.Now()
	time.Sleep(flood)
	close(stop)
	wg.Wait()
	// The minute's summaries are in the count: the limiter's first
	// minute ends at most a minute after the share started.
	p.WaitWhere(t, 30*time.Second, "the log limiter's summaries", func(r testenv.Record) bool { return r.Has("suppressed") })
	// The rest of the minute's summaries, and whatever is held back
	// since, are written by the time the share has exited.
	if err := p.Stop(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Errorf("the share after SIGTERM: %v", err)
	}
	span := time.Since(start)
	recs := p.Records("")[before:]
	lines := make([]string, 0, len(recs))
	for _, r := range recs {
		lines = append(lines, fmt.Sprintf("%s %s %v", r.Level, r.Msg, r.Attrs))
	}
	t.Logf("%d requests in %v (%v); the share logged %d lines in %v, summaries and its exit included:\n%s",
		sent.Load(), flood, kinds, len(lines), span.Round(time.Second), strings.Join(lines, "\n"))
	if sent.Load() < 1000 {
		t.Errorf("only %d requests sent in %v; the flood did not flood", sent.Load(), flood)
	}
	if len(lines) >= 100 {
		t.Errorf("the share logged %d lines in %v; want fewer than 100", len(lines), span.Round(time.Second))
	}
	if !slices.ContainsFunc(recs, func(r testenv.Record) bool { return r.Msg == "refused a relay" }) {
		t.Error("the first refused relay was not logged at all")
	}
}

// holdSilent keeps n connections to addr that never send a byte,
// re-opening each as soon as the server drops it, until stop; it counts
// the connections opened.
func holdSilent(addr string, n int, stop <-chan struct{}) (wait func(), opened *atomic.Int64) {
	opened = &atomic.Int64{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
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
				time.Sleep(5 * time.Millisecond) // spares the shared CPUs
			}
		})
	}
	return wg.Wait, opened
}

// slowlorisEnv names, in the environment of this test binary run again,
// the address and number of connections for holdSilent (see TestMain).
const slowlorisEnv = "DSFTP_TEST_SLOWLORIS"

// slowlorisMain is the test binary run again as an attacker: holdSilent
// until its standard input closes, writing the count of connections
// opened every 50 ms.
func slowlorisMain(spec string) {
	addr, ns, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(ns)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: want ADDR,N\n", slowlorisEnv, spec)
		os.Exit(2)
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	wait, opened := holdSilent(addr, n, stop)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			wait()
			fmt.Printf("opened %d\n", opened.Load())
			return
		case <-t.C:
			fmt.Printf("opened %d\n", opened.Load())
		}
	}
}

// startSlowloris runs holdSilent(addr, n) in a process of its own, as an
// attacker on another machine behind the same address would: its
// goroutines do not delay the test's own client. It ends with the test.
func startSlowloris(t *testing.T, addr string, n int) (opened *atomic.Int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", slowlorisEnv, addr, n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the slowloris: %v", err)
	}
	opened = &atomic.Int64{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "opened "); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					opened.Store(n)
				}
			}
		}
	}()
	t.Cleanup(func() {
		in.Close()
		done := make(chan error, 1)
		go func() { <-read; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the slowloris process: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("the slowloris process did not end within 20 s of its stdin closing")
		}
	})
	return opened
}

// TestAttackSlowlorisSameAddress: 40 silent connections from 127.0.0.1,
// re-opened as they close (about 1,000 a second), while a friend on the
// same address (as behind one carrier-grade NAT) logs in 10 times with an
// accepted key: every login gets in, within the three connections dsftp's
// pool makes (before silent connections were dropped to make room: 0).
func TestAttackSlowlorisSameAddress(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "shared")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := testenv.NewKey(t, tmp, "friend")
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	_, fp := startShareBinary(t, dir, "--listen", addr, "--authorized-keys", key.Path+".pub", "--discovery", "off").ShareReady(t)

	opened := startSlowloris(t, addr, 40)
	testenv.WaitFor(t, 15*time.Second, "the slowloris to open its connections", func() bool { return opened.Load() >= 40 })
	// Past the 5 s version grace the share cuts the silent ones, and
	// they are opened anew.
	testenv.WaitFor(t, 20*time.Second, "the share to cut the silent connections", func() bool { return opened.Load() >= 80 })

	// The friend dials as dsftp's pool does: a connection closed during
	// the SSH handshake is tried again, up to pool.busyTries (3) in all.
	const logins, tries = 10, 3
	ok, first := 0, 0
	for i := range logins {
		for try := 1; try <= tries; try++ {
			err := friendLogin(addr, fp, key.Signer)
			if err == nil {
				ok++
				if try == 1 {
					first++
				}
				break
			}
			t.Logf("friend's login %d, connection %d: %v", i, try, err)
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("friend: %d of %d logins from the attacker's address (%d with the first connection); the attacker opened %d silent connections",
		ok, logins, first, opened.Load())
	if ok < logins {
		t.Errorf("%d of %d logins from the slowloris' address succeeded within %d connections each; want all", ok, logins, tries)
	}
}

// friendLogin logs in to the share with host key fingerprint fp with key
// and lists the share's root.
func friendLogin(addr, fp string, key ssh.Signer) error {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: "friend", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if got := ssh.FingerprintSHA256(k); got != fp {
				return fmt.Errorf("host key %s, want %s", got, fp)
			}
			return nil
		},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		return err
	}
	defer sc.Close()
	_, err = sc.ReadDir("/")
	return err
}
