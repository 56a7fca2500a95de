//go:build linux

package instance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestDialBack: x advertises an address its "router" says it forwards.
// Two members dial it back: while the mapping does not work, or answers
// with another share's host key, none is reached; once it works, it is.
// An address x does not advertise is never dialed for it.
func TestDialBack(t *testing.T) {
	t.Parallel()
	l := newRouteLab(t)
	a := l.add("a", t.TempDir(), true, memberOpts{})
	l.add("b", t.TempDir(), true, memberOpts{})
	x := l.add("x", t.TempDir(), true, memberOpts{})
	router := newCutProxy(t, x.srv.Addrs()[0].String(), false)
	impostor := newCutProxy(t, a.srv.Addrs()[0].String(), true)
	x.advert(l, func(p *peers.Peer) { p.Addrs = []string{router.addr(), impostor.addr()} })
	xID := x.srv.Fingerprint()
	ctx := testenv.Context(t, time.Minute)

	reached, checked := x.pool.CheckReachable(ctx, l.reg.List(), xID, []string{router.addr(), impostor.addr()})
	if checked != 2 || len(reached) != 0 {
		t.Fatalf("mapping not working: reached %v, %d members checked; want none reached by 2", reached, checked)
	}
	router.open.Store(true)
	// One check per connection every 10 s: ask again over new
	// connections, with x's key.
	again, err := pool.New(pool.Options{RunKey: x.pool.RunKey(), Timeout: 3 * time.Second, User: "dsftp", Logger: l.log})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	reached, checked = again.CheckReachable(ctx, l.reg.List(), xID, []string{router.addr()})
	if checked != 2 || !slices.Equal(reached, []string{router.addr()}) {
		t.Fatalf("mapping working: reached %v, %d members checked; want %s", reached, checked, router.addr())
	}
	x.pool.Close()
	x.pool, _ = pool.New(pool.Options{RunKey: x.pool.RunKey(), Timeout: 3 * time.Second, User: "dsftp", Logger: l.log})
	if _, checked := x.pool.CheckReachable(ctx, l.reg.List(), xID, []string{deadAddr(t)}); checked != 0 {
		t.Fatalf("an address x does not advertise was checked by %d members", checked)
	}
	if !strings.Contains(l.logs.String(), "is not an address x advertises") {
		t.Fatal("the refusal of an address x does not advertise is not logged")
	}
}
