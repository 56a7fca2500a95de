//go:build linux

package instance

// Relays between real shares and pools: what one member does through a
// relay is counted against that member, not against the member carrying
// it, and relayed or reverse traffic keeps connections from being closed
// as idle.

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// TestRelayPenaltyByProxy: mallory opens relays to carol through alice
// and never says a word in them (8 at a time, each re-opened as soon as it
// closes), which earns penalties at carol. They are mallory's, as alice
// introduces it: bob, reading carol through alice with a new login each
// time, is let in throughout; alice refuses most of mallory's opens.
func TestRelayPenaltyByProxy(t *testing.T) {
	t.Parallel()
	l := newRouteLab(t)
	a := l.add("alice", t.TempDir(), true, memberOpts{})
	c := l.add("carol", shareDir(t, "hello", []byte("hello from carol\n")), false, memberOpts{advertise: deadAddr(t), keepRoutes: true, conns: 1})
	b := l.add("bob", t.TempDir(), false, memberOpts{advertise: deadAddr(t)})
	mallory := l.add("mallory", t.TempDir(), false, memberOpts{advertise: deadAddr(t)})
	waitFor(t, 15*time.Second, "carol's reverse connection held by alice", func() bool { return len(l.entry("carol").Via) == 1 })
	cID := c.srv.Fingerprint()

	addr := a.srv.Addrs()[0].String()
	mc, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(mallory.pool.RunKey())},
		HostKeyCallback: ssh.FixedHostKey(a.srv.HostKey()), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("mallory logs in to alice: %v", err)
	}
	defer mc.Close()

	const attack = 25 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), attack)
	defer cancel()
	var opened, refused atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				ch, reqs, err := mc.OpenChannel(route.ChannelRelay, ssh.Marshal(route.RelayRequest{Target: cID}))
				if err != nil {
					refused.Add(1)
					continue
				}
				opened.Add(1)
				go ssh.DiscardRequests(reqs)
				// Silent: wait for carol (or alice) to give up on it.
				stop := context.AfterFunc(ctx, func() { ch.Close() })
				_, _ = io.Copy(io.Discard, ch)
				stop()
				ch.Close()
			}
		})
	}

	// Carol's silent-connection penalty blocks a source after two (5 s
	// grace each, 10 s penalty each): from ~10 s on, a penalised holder
	// address would lock bob out.
	var ok, tried int
	for ctx.Err() == nil {
		b.pool.Forget(cID)
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := b.readFile(rctx, l.entry("carol"), "hello")
		rcancel()
		if ctx.Err() != nil {
			break
		}
		tried++
		if err == nil && string(got) == "hello from carol\n" {
			ok++
		} else {
			t.Logf("bob's read %d of carol through alice: %v", tried, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if r := b.pool.Route(cID); r != "relay via alice" && r != "" {
		t.Errorf("bob reached carol by %q, want relay via alice", r)
	}
	t.Logf("during %v of mallory's silent relays (%d opened, %d refused by alice): bob read carol %d/%d times",
		attack, opened.Load(), refused.Load(), ok, tried)
	if tried < 10 || ok != tried {
		t.Fatalf("bob read carol through alice %d/%d times during the attack; want all (and at least 10)", ok, tried)
	}
	// alice lets a member open relays at 2 a second after a burst of 16.
	if max := int64(16 + 2*attack/time.Second + 2); opened.Load() > max {
		t.Fatalf("alice opened %d relays for mallory in %v; want at most %d", opened.Load(), attack, max)
	}
	if !strings.Contains(l.logs.String(), "penalised") {
		t.Fatalf("carol penalised nobody: the attack did not work as meant")
	}
}

// TestRelayIdleTimeout: alice closes connections idle for 5 s. Carol's
// reverse connection to alice is kept while nothing uses it, and bob reads
// 40 MiB from carol through alice at 4 MiB/s (about 10 s): the relay keeps
// bob's connection to alice from being idle, and the read completes.
func TestRelayIdleTimeout(t *testing.T) {
	t.Parallel()
	data := randomData(t, 40<<20)
	l := newRouteLab(t)
	l.add("alice", t.TempDir(), true, memberOpts{idleTimeout: 5 * time.Second, relayRate: 4 << 20})
	c := l.add("carol", shareDir(t, "big", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true, conns: 1})
	b := l.add("bob", t.TempDir(), false, memberOpts{advertise: deadAddr(t)})
	waitFor(t, 15*time.Second, "carol's reverse connection held by alice", func() bool { return len(l.entry("carol").Via) == 1 })
	lost := func() int {
		return strings.Count(l.logs.String(), `msg="reverse connection lost; making another" member=carol`)
	}

	time.Sleep(8 * time.Second)
	if n := lost(); n > 0 {
		t.Fatalf("carol's unused reverse connection was dropped %d times within 8 s of alice's 5 s idle timeout", n)
	}
	ctx := testenv.Context(t, time.Minute)
	start := time.Now()
	got, err := b.readFile(ctx, l.entry("carol"), "big")
	took := time.Since(start)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob read %d of %d bytes of carol through alice in %v: %v", len(got), len(data), took, err)
	}
	if r := b.pool.Route(c.srv.Fingerprint()); r != "relay via alice" {
		t.Fatalf("bob reached carol by %q, want relay via alice", r)
	}
	if n := lost(); n > 0 {
		t.Fatalf("carol's reverse connection was dropped %d times", n)
	}
	if took < 6*time.Second {
		t.Fatalf("the read took %v, not much longer than the idle timeout: the test proves nothing", took)
	}
	t.Logf("bob read 40 MiB of carol through alice (idle timeout 5 s) in %v; carol's reverse connection kept", took.Round(time.Millisecond))
}
