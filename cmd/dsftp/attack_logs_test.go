//go:build linux

package main

// Attacks on a real `dsftp share` that aim at its log and at a friend who
// shares the attacker's address.

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
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

// TestAttackSlowlorisSameAddress: 40 silent connections from 127.0.0.1,
// re-opened as they close, while a friend on the same address (as behind
// one carrier-grade NAT) logs in 10 times with an accepted key: at least
// 9 get in (before silent connections were dropped to make room: 0).
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

	stop := make(chan struct{})
	wait, opened := holdSilent(addr, 40, stop)
	defer func() { close(stop); wait() }()
	testenv.WaitFor(t, 15*time.Second, "the slowloris to open its connections", func() bool { return opened.Load() >= 40 })
	// Past the 5 s version grace the share cuts the silent ones, and
	// they are opened anew.
	testenv.WaitFor(t, 20*time.Second, "the share to cut the silent connections", func() bool { return opened.Load() >= 80 })

	const logins = 10
	ok := 0
	for i := range logins {
		if err := friendLogin(addr, fp, key.Signer); err != nil {
			t.Logf("friend's login %d: %v", i, err)
		} else {
			ok++
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("friend: %d of %d logins from the attacker's address; the attacker opened %d silent connections", ok, logins, opened.Load())
	if ok < 9 {
		t.Errorf("%d of %d logins from the slowloris' address succeeded; want at least 9", ok, logins)
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
