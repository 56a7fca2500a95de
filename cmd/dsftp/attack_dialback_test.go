//go:build linux

package main

// Attacks on the dial-back check from outside, against the real binary:
// a member must not be able to aim a share's dials at someone else
// (reflection), learn which ports are open from the answer's timing
// (scanning), or make a member believe it can be dialed when it cannot
// (the liar).

import (
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// countingProxy forwards 127.0.0.1 connections to target and counts them.
type countingProxy struct {
	addr     string
	accepted atomic.Int32
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return p
}

// TestDialBackReflection: a member whose advert lists a victim share's
// address 4 times asks a real share for a dial-back check 5 times over
// fresh connections, and a second member asks for the same address: the
// victim is dialed once, and does not penalise the checker's address (a
// real login from it still succeeds).
func TestDialBackReflection(t *testing.T) {
	t.Parallel()
	f := newFakeDiscord(t)
	_, alicePort := startDiscordShare(t, f, f.bot(), "alice", t.TempDir())
	_, victimPort := startDiscordShare(t, f, f.bot(), "victim", t.TempDir())
	alice, _ := f.advertOf("alice")
	victim, _ := f.advertOf("victim")
	proxy := newCountingProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(victimPort)))

	m := newFakeMember(t, f, "mallory")
	m.advertise(t, slices.Repeat([]string{proxy.addr}, 4), true)
	m2 := newFakeMember(t, f, "mallet")
	m2.advertise(t, []string{proxy.addr}, true)
	// Both shares know mallory before the attack starts.
	m.login(t, victimPort, victim.HostKey).Close()
	m.login(t, alicePort, alice.HostKey).Close()

	var answers []string
	for i := range 5 {
		c, err := m.dial(alicePort, alice.HostKey)
		if err != nil {
			t.Fatalf("ask %d: log in to alice: %v", i+1, err)
		}
		ok, reached, took, err := c.dialBack(slices.Repeat([]string{proxy.addr}, 4))
		c.Close()
		if err != nil {
			t.Fatalf("ask %d: %v", i+1, err)
		}
		answers = append(answers, strconv.FormatBool(ok)+" reached="+strings.Join(reached, ",")+" in "+took.Round(time.Millisecond).String())
	}
	c2 := m2.login(t, alicePort, alice.HostKey)
	ok2, _, _, err := c2.dialBack([]string{proxy.addr})
	if err != nil {
		t.Fatal(err)
	}
	n := proxy.accepted.Load()
	t.Logf("answers to mallory's 5 asks: %s; mallet's ask checked: %v; dials at the victim: %d", strings.Join(answers, "; "), ok2, n)
	if n != 1 {
		t.Errorf("the victim was dialed %d times, want once (one dial per address per minute)", n)
	}
	if !strings.HasPrefix(answers[0], "true") {
		t.Errorf("mallory's first ask was not checked: %s", answers[0])
	}
	if ok2 {
		t.Error("a second member had the same address dialed again within a minute")
	}
	c, err := m.dial(victimPort, victim.HostKey)
	if err != nil {
		t.Fatalf("a login to the victim from the checker's address after the attack: %v", err)
	}
	c.Close()
}

// filteredAddr returns an address on 127.0.0.1 that drops connection
// attempts, as a firewall's drop rule does: a listener that never
// accepts, with its accept queue (backlog 0) full.
func filteredAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	_, err = net.DialTimeout("tcp", addr, time.Second)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("the full listener at %s answers a dial (%v); want it dropped", addr, err)
	}
	return addr
}

// TestDialBackNoScan: members advertise a closed port, a filtered one and
// an open one and ask a real share to dial each back: every answer comes
// after the same fixed time, so the timing says nothing about the port.
func TestDialBackNoScan(t *testing.T) {
	t.Parallel()
	f := newFakeDiscord(t)
	_, alicePort := startDiscordShare(t, f, f.bot(), "alice", t.TempDir())
	alice, _ := f.advertOf("alice")

	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	filtered := filteredAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var opened atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			opened.Add(1)
			c.Close()
		}
	}()
	ports := []struct{ kind, addr string }{{"closed", closed}, {"filtered", filtered}, {"open", ln.Addr().String()}}
	var took []time.Duration
	var report []string
	for _, p := range ports {
		m := newFakeMember(t, f, "scan-"+p.kind)
		m.advertise(t, []string{p.addr}, true)
		c := m.login(t, alicePort, alice.HostKey)
		ok, reached, d, err := c.dialBack([]string{p.addr})
		if err != nil || !ok || len(reached) != 0 {
			t.Fatalf("%s port: checked=%v reached=%v err=%v; want checked, nothing reached", p.kind, ok, reached, err)
		}
		took = append(took, d)
		report = append(report, p.kind+" "+d.Round(time.Millisecond).String())
	}
	t.Logf("answer times: %s", strings.Join(report, ", "))
	if opened.Load() != 1 {
		t.Errorf("the open port saw %d dials, want 1", opened.Load())
	}
	// Without the fixed answer time a closed port answers at once and a
	// filtered one after the 4 s dial deadline; a spread well below that
	// is the machine's scheduling (0.5 s seen at load 11), not the port.
	if spread := slices.Max(took) - slices.Min(took); spread > 1500*time.Millisecond {
		t.Errorf("the answers' times differ by %v (%s): the timing tells the ports apart", spread, strings.Join(report, ", "))
	}
}

// TestDialBackLiar: a member answers "reached" to every dial-back check
// of a real member whose advertised public address is dead. The real
// member believes only a dial that arrives at its own share: it stays
// unreachable in its advert and keeps its reverse connection to the
// reachable share alice.
func TestDialBackLiar(t *testing.T) {
	t.Parallel()
	f := newFakeDiscord(t)
	alicePort := strconv.Itoa(testenv.FreePort(t))
	alice := testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, f.bot())}, "share", t.TempDir(), "--name", "alice",
		"--listen", "127.0.0.1:"+alicePort, "--advertise", "127.0.0.1:"+alicePort)
	alice.WaitRecord(t, 60*time.Second, "advertising in Discord", "name", "alice")
	aliceAd, _ := f.advertOf("alice")

	liar := newFakeMember(t, f, "liar")
	addr, answered := liar.serveDialBackLiar(t, func(k ssh.PublicKey) bool {
		d, _ := f.advertOf("dave")
		return d != nil && slices.ContainsFunc(d.ClientKeys, func(c ssh.PublicKey) bool {
			return advert.MarshalKey(c) == advert.MarshalKey(k)
		})
	})
	liar.advertise(t, []string{addr}, false)

	dead := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	dave := startDiscordMount(t, f, f.bot(), "dave", "--advertise", dead)
	dave.proc.WaitRecord(t, 60*time.Second, "members could not reach the share at its public address; the router's mapping does not work from outside, so members reach it through reverse connections")
	if answered.Load() == 0 {
		t.Fatalf("dave never asked the liar: the test proves nothing\n%s", dave.proc.Output)
	}
	if dave.proc.Count("a member says it reached our address, but its dial did not arrive at our share; not believed", "addr", dead) == 0 {
		t.Errorf("dave did not log the answer it did not believe:\n%s", dave.proc.Output)
	}
	held := func() bool {
		d, _ := f.advertOf("dave")
		return d != nil && d.Unreachable && slices.Contains(d.Via, aliceAd.Fingerprint)
	}
	testenv.WaitFor(t, 20*time.Second, "dave's advert to say unreachable, via alice", held)
	for range 10 {
		time.Sleep(500 * time.Millisecond)
		if !held() {
			d, _ := f.advertOf("dave")
			t.Fatalf("dave's advert changed to unreachable=%v via=%v after the liar's answer", d.Unreachable, d.Via)
		}
	}
	t.Logf("the liar answered %d checks; dave stayed unreachable, via alice", answered.Load())
}
