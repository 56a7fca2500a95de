//go:build linux

package lan_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

type node struct {
	codec  *testCodec
	reg    *peers.Registry
	d      *lan.Discovery
	cancel context.CancelFunc
	done   chan error
}

// startNode runs a Discovery that sends and listens on loopback only.
func startNode(t *testing.T, name string, port int, mod func(*lan.Options)) *node {
	t.Helper()
	n := &node{codec: newTestCodec(t, name, "127.0.0.1:2222"), done: make(chan error, 1)}
	n.reg = peers.NewRegistry(n.codec.ID())
	opts := lan.Options{
		Codec: n.codec, Registry: n.reg, SelfID: n.codec.ID(), Port: port,
		Interfaces: []string{"lo"}, Interval: time.Minute,
	}
	if mod != nil {
		mod(&opts)
	}
	d, err := lan.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	n.d = d
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.reg.Run(ctx)
	go func() { n.done <- d.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		panic("lan discovery did not stop within 10 s")
	}
}

func names(r *peers.Registry) []string {
	var out []string
	for _, e := range r.List() {
		out = append(out, e.DisplayName)
	}
	return out
}

func waitNames(t *testing.T, r *peers.Registry, want ...string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("peers %v", want), func() bool {
		return slices.Equal(names(r), want)
	})
}

// With an interval of a minute, the nodes can only find each other in
// time through "announce at once on start" and "announce at once when an
// unknown peer is heard": every node must list the other two.
func TestThreeOnOneHost(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	a := startNode(t, "alice", port, nil)
	b := startNode(t, "bob", port, nil)
	c := startNode(t, "carol", port, nil)
	waitNames(t, a.reg, "bob", "carol")
	waitNames(t, b.reg, "alice", "carol")
	waitNames(t, c.reg, "alice", "bob")

	e, ok := a.reg.Get("bob")
	if !ok {
		t.Fatal("bob vanished")
	}
	if e.Source != peers.SourceLAN {
		t.Errorf("Source = %q, want %q", e.Source, peers.SourceLAN)
	}
	if e.ID != b.codec.ID() || !bytes.Equal(e.HostKey.Marshal(), b.codec.host.PublicKey().Marshal()) {
		t.Errorf("bob's host key not the advertised one: ID %s, want %s", e.ID, b.codec.ID())
	}
	if name, ok := a.reg.AuthorizedKey(b.codec.client.PublicKey()); !ok || name != "bob" {
		t.Errorf("bob's client key not authorized on alice: %q %v", name, ok)
	}
	if !slices.Equal(e.Addrs, []string{"127.0.0.1:2222"}) {
		t.Errorf("Addrs = %v", e.Addrs)
	}
	if max := time.Now().Add(a.d.TTL()); e.Expires.IsZero() || e.Expires.After(max) {
		t.Errorf("Expires = %v, want set and not after %v", e.Expires, max)
	}
	for _, n := range []*node{a, b, c} {
		if s := n.d.Stats(); s.Accepted < 2 || s.Invalid != 0 || s.Malformed != 0 {
			t.Errorf("%s stats: %+v", n.codec.name, s)
		}
	}
}

// A peer that stops announcing is dropped after three missed
// announcements, and not before while it keeps announcing.
func TestExpiry(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	short := func(o *lan.Options) { o.Interval = 400 * time.Millisecond }
	a := startNode(t, "alice", port, short)
	b := startNode(t, "bob", port, short)
	waitNames(t, a.reg, "bob")
	ch, stopWatch := a.reg.Watch()
	defer stopWatch()
	// Bob keeps announcing: over many intervals alice must never lose him.
	deadline := time.After(10 * a.d.TTL() / 3)
	for watching := true; watching; {
		select {
		case <-ch:
			if !slices.Equal(names(a.reg), []string{"bob"}) {
				t.Fatalf("alice lost bob while he was announcing: %v", names(a.reg))
			}
		case <-deadline:
			watching = false
		}
	}
	// Bob goes silent (as if his machine died): no more adverts, not
	// even the one a clean exit sends.
	b.codec.mu.Lock()
	b.codec.mute = true
	b.codec.mu.Unlock()
	start := time.Now()
	waitNames(t, a.reg)
	waited := time.Since(start)
	if waited > a.d.TTL()+5*time.Second {
		t.Errorf("bob dropped only after %v; TTL is %v", waited, a.d.TTL())
	}
	// His last advert went out at most one interval (+10%) before he went
	// silent; it lives for 3.5 intervals.
	if min := 2 * 400 * time.Millisecond; waited < min {
		t.Errorf("bob dropped %v after going silent, before missing 3 announcements", waited)
	}
}

// A clean exit sends a short-lived advert: peers drop the leaver within
// seconds although its normal adverts live for minutes.
func TestLeave(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	a := startNode(t, "alice", port, nil)
	b := startNode(t, "bob", port, nil)
	waitNames(t, a.reg, "bob")
	if a.d.TTL() < time.Minute {
		t.Fatalf("TTL %v too short to tell leaving from expiring", a.d.TTL())
	}
	b.stop()
	start := time.Now()
	testenv.WaitFor(t, 15*time.Second, "bob to be dropped after leaving", func() bool {
		return len(a.reg.List()) == 0
	})
	t.Logf("bob dropped %v after he stopped", time.Since(start).Round(time.Millisecond))
}

// send writes raw datagrams to the port from a chosen loopback address.
func send(t *testing.T, from string, port int, msgs ...[]byte) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	for _, m := range msgs {
		if _, err := c.WriteToUDP(m, to); err != nil {
			t.Fatal(err)
		}
	}
}

// sendUntil repeats msg, as a peer's periodic announcements would, until
// cond holds: a flood may fill the socket buffer so that the kernel drops
// a single datagram.
func sendUntil(t *testing.T, from string, port int, msg []byte, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "an advert sent after a flood to be accepted", func() bool {
		if cond() {
			return true
		}
		send(t, from, port, msg)
		time.Sleep(100 * time.Millisecond)
		return cond()
	})
}

// Forged, tampered, replayed, expired, oversized and random packets change
// nothing; afterwards a real newcomer is still found.
func TestHostilePackets(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	a := startNode(t, "alice", port, nil)

	// Material from a real peer that is not running.
	bob := newTestCodec(t, "bob", "127.0.0.1:1")
	good, err := bob.Encode(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	adv, _, _, err := decodeAdvert(good)
	if err != nil {
		t.Fatal(err)
	}

	var hostile [][]byte
	// Signed by mallory, claiming bob's host key.
	forged := adv
	forged.Addrs = []string{"10.6.6.6:22"}
	m, _ := signAdvert(forged, testenv.NewSigner(t))
	hostile = append(hostile, m)
	// Bob's signature on changed content.
	tampered := strings.Replace(string(good), ".", "x.", 1)
	hostile = append(hostile, []byte(tampered))
	// Expired, properly signed.
	old := adv
	old.Expires = time.Now().Add(-time.Second)
	m, _ = signAdvert(old, bob.host)
	hostile = append(hostile, m)
	// Oversized but with the right prefix.
	hostile = append(hostile, append([]byte("dsftp/1 "), bytes.Repeat([]byte("A"), lan.MaxPacket)...))
	// Garbage: random bytes, empty, prefix-only, prefix plus noise.
	for i := 0; i < 2000; i++ {
		g := make([]byte, 1+i%700)
		rand.Read(g)
		if i%2 == 0 {
			g = append([]byte("dsftp/1 "), g...)
		}
		hostile = append(hostile, g)
	}
	hostile = append(hostile, []byte{}, []byte("dsftp/"), []byte("dsftp/1 ."), []byte("dsftp/1 a.b"))
	send(t, "127.0.0.2", port, hostile...)
	// Datagrams from one socket are read in order: once a valid advert
	// sent after the flood is in, every flood packet the kernel did not
	// drop has been handled.
	newer, _ := bob.Encode(time.Minute)
	sendUntil(t, "127.0.0.3", port, newer, func() bool { return len(a.reg.List()) > 0 })
	waitNames(t, a.reg, "bob")
	// The advertised address first, then where the advert came from.
	if e, _ := a.reg.Get("bob"); !slices.Equal(e.Addrs, []string{"127.0.0.1:1", "127.0.0.3:1"}) {
		t.Errorf("bob's addresses: %v (a forged advert said 10.6.6.6)", e.Addrs)
	}
	if s := a.d.Stats(); s.Accepted != 1 || s.Invalid < 2 || s.Malformed == 0 {
		t.Fatalf("stats after the flood: %+v", s)
	}

	// A replay of an older advert after a newer one is not accepted anew.
	stale := a.d.Stats().Stale
	send(t, "127.0.0.3", port, good) // seq 1 < 2
	testenv.WaitFor(t, 5*time.Second, "the replay to be counted stale", func() bool {
		return a.d.Stats().Stale > stale
	})

	// The real discovery still works after the flood.
	startNode(t, "carol", port, nil)
	waitNames(t, a.reg, "bob", "carol")
}

// A flood of validly signed adverts from one address is rate limited and
// does not keep adverts from another address out.
func TestRateLimit(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	a := startNode(t, "alice", port, func(o *lan.Options) { o.RateLimit = 100 })
	var flood [][]byte
	for i := 0; i < 500; i++ {
		m, err := newTestCodec(t, fmt.Sprintf("spam%d", i), "127.0.0.1:1").Encode(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, m)
	}
	send(t, "127.0.0.2", port, flood...)
	dave := newTestCodec(t, "dave", "127.0.0.1:1")
	m, _ := dave.Encode(time.Minute)
	sendUntil(t, "127.0.0.4", port, m, func() bool {
		_, ok := a.reg.ByID(dave.ID())
		return ok
	})
	s := a.d.Stats()
	if s.RateLimited == 0 {
		t.Fatalf("500 adverts at once from one address were not rate limited: %+v", s)
	}
	if s.Accepted > 100 {
		t.Errorf("accepted %d adverts from one address in a burst; the per-source limit allows about 20", s.Accepted)
	}
}

// Several Discoveries may share the port; plain sockets holding it
// without SO_REUSEPORT make Listen fail with an error that says what to do.
func TestPortTaken(t *testing.T) {
	c4, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	port := c4.LocalAddr().(*net.UDPAddr).Port
	// The same port on IPv6 too, where the host has IPv6.
	if c6, err := net.ListenPacket("udp6", fmt.Sprintf("[::]:%d", port)); err == nil {
		defer c6.Close()
	}
	d, err := lan.New(lan.Options{Codec: newTestCodec(t, "x"), Registry: peers.NewRegistry(""), Port: port, Interfaces: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Listen()
	if err == nil || !strings.Contains(err.Error(), "--lan-port") || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Errorf("Listen on a taken port: %v, want an error naming the port and --lan-port", err)
	}
}
