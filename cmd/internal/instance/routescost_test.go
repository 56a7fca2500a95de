//go:build linux

package instance

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestReverseCost100: a channel of 100 members, 10 of them reachable. Each
// of the 90 unreachable keeps exactly 2 reverse connections (never more),
// so the channel holds 180: twice the unreachable members, not one per
// pair. The rendezvous hash spreads them over the 10 reachable members.
// The registry stands in for the channel's adverts (what travels through
// Discord is measured by peers/discord's TestRateBudget100).
func TestReverseCost100(t *testing.T) {
	if testing.Short() {
		t.Skip("100-member simulation skipped in -short mode")
	}
	t.Parallel()
	const members, reachable, keep = 100, 10, 2
	l := newRouteLab(t)
	var holders, others []*labMember
	for i := range members {
		if i < reachable {
			holders = append(holders, l.add(fmt.Sprintf("r%02d", i), t.TempDir(), true, memberOpts{}))
			continue
		}
		others = append(others, l.add(fmt.Sprintf("u%02d", i), t.TempDir(), false,
			memberOpts{advertise: deadAddr(t), keepRoutes: true, conns: keep}))
	}
	settled := waitFor(t, 60*time.Second, "every unreachable member holds 2 reverse connections", func() bool {
		for _, m := range others {
			if len(l.entry(m.name).Via) != keep {
				return false
			}
		}
		return true
	})
	// Wait a few of KeepReverse's rounds more: nobody adds any.
	time.Sleep(3 * time.Second)
	total := 0
	var per []int
	for _, h := range holders {
		conns, from := h.routes.Held()
		if conns != from {
			t.Errorf("%s holds %d reverse connections from %d members; want one per member", h.name, conns, from)
		}
		total += conns
		per = append(per, conns)
	}
	for _, m := range others {
		if via := l.entry(m.name).Via; len(via) > keep {
			t.Errorf("%s keeps %d reverse connections, more than %d", m.name, len(via), keep)
		}
		if conns, _ := m.routes.Held(); conns != 0 {
			t.Errorf("unreachable %s holds %d reverse connections; nobody should offer to it", m.name, conns)
		}
	}
	if want := keep * (members - reachable); total != want {
		t.Errorf("the channel holds %d reverse connections; want %d (2 per unreachable member)", total, want)
	}
	slices.Sort(per)
	// Mean 18 per reachable member; a hash spread far from it would
	// pile connections on one member (a share allows 64 by default).
	if per[len(per)-1] > 3*total/reachable {
		t.Errorf("reverse connections per reachable member %v: the spread is uneven", per)
	}
	t.Logf("%d members (%d reachable): %d reverse connections after %v, per reachable member %v",
		members, reachable, total, settled.Round(100*time.Millisecond), per)
}
