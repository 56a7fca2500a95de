//go:build linux

package instance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestDialBack: x advertises an address its "router" says it forwards.
// Two members dial it back: while the mapping does not work, or answers
// with another share's host key, none is reached; a mapping that works is
// found through the nonce that arrives at x's share. A member that was
// just asked refuses to check x again (one check per member every 10 s,
// whatever the connection), and x asks the next. An address x does not
// advertise is never dialed for it.
func TestDialBack(t *testing.T) {
	t.Parallel()
	l := newRouteLab(t)
	a := l.add("a", t.TempDir(), true, memberOpts{})
	for _, n := range []string{"b", "c", "d"} {
		l.add(n, t.TempDir(), true, memberOpts{})
	}
	x := l.add("x", t.TempDir(), true, memberOpts{})
	router := newCutProxy(t, x.srv.Addrs()[0].String(), false)
	impostor := newCutProxy(t, a.srv.Addrs()[0].String(), true)
	working := newCutProxy(t, x.srv.Addrs()[0].String(), true)
	x.advert(l, func(p *peers.Peer) { p.Addrs = []string{router.addr(), impostor.addr(), working.addr()} })
	xID := x.srv.Fingerprint()
	ctx := testenv.Context(t, time.Minute)

	reached, checked := x.routes.CheckReachable(ctx, x.pool, l.reg.List(), xID, []string{router.addr(), impostor.addr()})
	if checked != 2 || len(reached) != 0 {
		t.Fatalf("mapping not working: reached %v, %d members checked; want none reached by 2", reached, checked)
	}
	start := time.Now()
	reached, checked = x.routes.CheckReachable(ctx, x.pool, l.reg.List(), xID, []string{working.addr()})
	if checked != 2 || !slices.Equal(reached, []string{working.addr()}) {
		t.Fatalf("mapping working: reached %v, %d members checked; want %s by 2", reached, checked, working.addr())
	}
	t.Logf("the working mapping was found in %v", time.Since(start).Round(time.Millisecond))
	logs := l.logs.String()
	if n := strings.Count(logs, "a member's dial-back check arrived"); n != 2 {
		t.Errorf("%d dial-back arrivals logged by x's share, want 2 (one per checker)", n)
	}
	const refused = "this member's last check was less than 10s ago"
	if !strings.Contains(logs, refused) {
		// The members are asked in random order: the two checks may have
		// asked all four, and then every member refuses a third.
		if _, checked := x.routes.CheckReachable(ctx, x.pool, l.reg.List(), xID, []string{working.addr()}); checked != 0 || !strings.Contains(l.logs.String(), refused) {
			t.Errorf("members asked within 10 s checked again (%d checked a third time)", checked)
		}
	}
	if _, checked := x.routes.CheckReachable(ctx, x.pool, l.reg.List(), xID, []string{deadAddr(t)}); checked != 0 {
		t.Fatalf("an address x does not advertise was checked by %d members", checked)
	}
	if !strings.Contains(l.logs.String(), "is not an address x advertises") {
		t.Fatal("the refusal of an address x does not advertise is not logged")
	}
}
