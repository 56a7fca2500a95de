//go:build linux

package instance

// Faults on the routes through members (issue 13): a relaying member that
// dies mid-read, a reverse connection that drops, a member whose address
// starts to work.

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func randomData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRelayHolderKilled: b reads c (both unreachable) through a relay;
// the relaying member dies mid-read. The read fails with EIO within the
// pool's deadline, and reading again works through the other member
// holding c's reverse connection.
func TestRelayHolderKilled(t *testing.T) {
	t.Parallel()
	data := randomData(t, 6<<20)
	l := newRouteLab(t)
	// Relays capped at 2 MiB/s, so that the read is still going when
	// the holder dies.
	l.add("a", t.TempDir(), true, memberOpts{relayRate: 2 << 20})
	l.add("e", t.TempDir(), true, memberOpts{relayRate: 2 << 20})
	c := l.add("c", shareDir(t, "big", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true})
	b := l.add("b", t.TempDir(), false, memberOpts{advertise: deadAddr(t)})
	cID := c.srv.Fingerprint()
	waitFor(t, 15*time.Second, "c's reverse connections held by a and e", func() bool { return len(l.entry("c").Via) == 2 })

	ctx := testenv.Context(t, time.Minute)
	r, err := b.pool.OpenReader(ctx, l.entry("c"), "big", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB through the relay: %v", err)
	}
	route := b.pool.Route(cID)
	holder, other := "a", "e"
	switch route {
	case "relay via a":
	case "relay via e":
		holder, other = "e", "a"
	default:
		t.Fatalf("b reaches c by %q, want a relay via a or e", route)
	}
	start := time.Now()
	l.member(holder).kill()
	_, err = io.ReadAll(r)
	took := time.Since(start)
	if pool.Errno(err) != syscall.EIO {
		t.Fatalf("read after the relay %s died: %v (errno %v), want EIO", holder, err, pool.Errno(err))
	}
	// The pool's deadline is 3 s; the loss shows at once, when the
	// relay's connection closes.
	if took > 3*time.Second+2*time.Second {
		t.Fatalf("the read failed %v after the relay died; want within the 3 s deadline", took)
	}
	t.Logf("relay %s killed: the read failed with EIO after %v", holder, took.Round(time.Millisecond))
	r.Close()

	start = time.Now()
	got, err := b.readFile(ctx, l.entry("c"), "big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading again: %d bytes, %v", len(got), err)
	}
	if r := b.pool.Route(cID); r != "relay via "+other {
		t.Fatalf("reading again went by %q, want relay via %s", r, other)
	}
	t.Logf("read again through relay via %s in %v", other, time.Since(start).Round(time.Millisecond))
}

// TestReverseRemade: a holds c's reverse connection; the link drops. c
// makes another within seconds and a reads c again (c has no other
// route).
func TestReverseRemade(t *testing.T) {
	t.Parallel()
	data := randomData(t, 64<<10)
	l := newRouteLab(t)
	a := l.add("a", t.TempDir(), true, memberOpts{})
	link := newCutProxy(t, a.srv.Addrs()[0].String(), true)
	a.advert(l, func(p *peers.Peer) { p.Addrs = []string{link.addr()} })
	c := l.add("c", shareDir(t, "f", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true})
	cID := c.srv.Fingerprint()
	waitFor(t, 15*time.Second, "a holds c's reverse connection", func() bool { return a.routes.Has(cID) })
	ctx := testenv.Context(t, time.Minute)
	if got, err := a.readFile(ctx, l.entry("c"), "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the reverse connection: %d bytes, %v", len(got), err)
	}
	if r := a.pool.Route(cID); r != "reverse" {
		t.Fatalf("a reaches c by %q, want reverse", r)
	}

	link.cut()
	took := waitFor(t, 15*time.Second, "a reads c again after the reverse connection dropped", func() bool {
		got, err := a.readFile(ctx, l.entry("c"), "f")
		return err == nil && bytes.Equal(got, data)
	})
	if r := a.pool.Route(cID); r != "reverse" {
		t.Fatalf("a reaches c by %q after the drop, want reverse", r)
	}
	t.Logf("reverse connection re-made and read through %v after the drop", took.Round(time.Millisecond))
}

// takeOver checks a better route taking over from a worse one: reader
// opens file f of c (data) and reads its first MiB by the route from;
// better() makes the better route work; then reader's next requests go by
// the route to, the file open on the old route finishes there intact, and
// the old connection closes once that file is closed.
func takeOver(t *testing.T, l *routeLab, reader *labMember, c *labMember, data []byte, from, to string, better func()) {
	t.Helper()
	cID := c.srv.Fingerprint()
	ctx := testenv.Context(t, time.Minute)
	r, err := reader.pool.OpenReader(ctx, l.entry(c.name), "f", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	if got := reader.pool.Route(cID); got != from {
		t.Fatalf("%s reaches %s by %q, want %s", reader.name, c.name, got, from)
	}
	better()
	took := waitFor(t, 10*time.Second, to+" takes over from "+from, func() bool {
		_, _ = reader.pool.Stat(ctx, l.entry(c.name), "f")
		return reader.pool.Route(cID) == to
	})
	t.Logf("%s took over from %s %v after it could", to, from, took.Round(time.Millisecond))
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("the file open on %s: %d bytes, %v", from, len(head)+len(rest), err)
	}
	r.Close()
	waitFor(t, 5*time.Second, "the "+from+" connection closes after its last file", func() bool {
		return strings.Contains(l.logs.String(), `reason="replaced by a better route"`)
	})
}

// TestDirectTakesOver: a reads c over c's reverse connection; then c's
// advertised address starts to work (its router's mapping came up). A
// direct connection takes over the new requests without any new advert;
// a file already open finishes on the reverse route, which then closes.
func TestDirectTakesOver(t *testing.T) {
	t.Parallel()
	data := randomData(t, 3<<20)
	l := newRouteLab(t)
	a := l.add("a", t.TempDir(), true, memberOpts{pool: func(o *pool.Options) { o.DirectRetry = 200 * time.Millisecond }})
	c := l.add("c", shareDir(t, "f", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true})
	router := newCutProxy(t, c.srv.Addrs()[0].String(), false)
	c.advert(l, func(p *peers.Peer) { p.Addrs = []string{router.addr()} })
	waitFor(t, 15*time.Second, "a holds c's reverse connection", func() bool { return a.routes.Has(c.srv.Fingerprint()) })
	takeOver(t, l, a, c, data, "reverse", "direct", func() { router.open.Store(true) })
}

// TestReverseTakesOverFromRelay: a reads c through a relay via e, since c
// keeps its reverse connection to e only (a's address does not answer
// yet). Then a's address starts to work and c connects to a too. A's
// next requests go over c's own connection, not through e (whose relays
// are capped), without any new advert from c; the file open on the relay
// finishes there, and the relayed connection then closes.
func TestReverseTakesOverFromRelay(t *testing.T) {
	t.Parallel()
	data := randomData(t, 3<<20)
	l := newRouteLab(t)
	l.add("e", t.TempDir(), true, memberOpts{})
	c := l.add("c", shareDir(t, "f", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true})
	waitFor(t, 15*time.Second, "c's reverse connection held by e", func() bool { return len(l.entry("c").Via) == 1 })
	a := l.add("a", t.TempDir(), true, memberOpts{advertise: deadAddr(t)})
	takeOver(t, l, a, c, data, "relay via e", "reverse", func() {
		a.advert(l, func(p *peers.Peer) { p.Addrs = []string{a.srv.Addrs()[0].String()} })
		waitFor(t, 20*time.Second, "c keeps a reverse connection to a too", func() bool { return a.routes.Has(c.srv.Fingerprint()) })
	})
}
