package limits

import (
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// TestPenaltyAccrues: offences add up; the source is blocked once they
// reach 15 s, and stays blocked for what it accrued, at most PenaltyMax.
// Charges that ran out before the next do not add up.
func TestPenaltyAccrues(t *testing.T) {
	g := newGate(t, Options{PenaltyMax: 30 * time.Second})
	src := addr("192.0.2.1")
	steps := []struct {
		at      time.Duration
		o       Offence
		blocked bool
		until   time.Duration
	}{
		{0, NoLogin, false, 0},                             // 1 s
		{0, AuthFailed, false, 0},                          // 6 s
		{0, LoginTimeout, true, 16 * time.Second},          // 16 s: blocked
		{time.Second, Silent, false, 0},                    // 26 s, already blocked
		{time.Second, Silent, false, 0},                    // capped at 30 s
		{40 * time.Second, Silent, false, 0},               // ran out: 10 s anew
		{60 * time.Second, Silent, false, 0},               // ran out again
		{61 * time.Second, Silent, true, 80 * time.Second}, // 9 + 10 s
	}
	for i, s := range steps {
		p := g.Penalise(src, s.o, t0.Add(s.at))
		if p.Trusted || p.Blocked != s.blocked || (s.blocked && !p.Until.Equal(t0.Add(s.until))) {
			t.Fatalf("step %d: %+v; want blocked %v until +%v", i, p, s.blocked, s.until)
		}
		if i == 4 {
			if until, ok := g.Blocked(src, t0.Add(s.at)); !ok || !until.Equal(t0.Add(31*time.Second)) {
				t.Fatalf("after step 4: blocked %v until %v; want until +31s (PenaltyMax after the last charge)", ok, until)
			}
		}
	}
}

// TestPenaltyMaxBelowMin: with PenaltyMax under 15 s, reaching PenaltyMax
// blocks.
func TestPenaltyMaxBelowMin(t *testing.T) {
	g := newGate(t, Options{PenaltyMax: 12 * time.Second})
	src := addr("192.0.2.1")
	if p := g.Penalise(src, Silent, t0); p.Blocked {
		t.Fatal("blocked after 10 s of 12")
	}
	if p := g.Penalise(src, Silent, t0); !p.Blocked || !p.Until.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("%+v; want blocked until +12s", p)
	}
}

// TestPenaltiesOff: a negative PenaltyMax charges nothing.
func TestPenaltiesOff(t *testing.T) {
	g := newGate(t, Options{PenaltyMax: -1})
	src := addr("192.0.2.1")
	for range 10 {
		if p := g.Penalise(src, Silent, t0); p.Blocked {
			t.Fatal("blocked with penalties off")
		}
	}
	if _, ok := g.Blocked(src, t0); ok {
		t.Error("blocked with penalties off")
	}
}

// TestTrust: after a login from a source, its silent, timed-out and
// abandoned connections cost nothing for 10 minutes; failed logins still
// do. Other sources are not trusted.
func TestTrust(t *testing.T) {
	g := newGate(t, Options{})
	src, other := addr("192.0.2.1"), addr("192.0.2.2")
	g.Trust(src, t0)
	for _, o := range []Offence{Silent, LoginTimeout, NoLogin, Silent, Silent} {
		if p := g.Penalise(src, o, t0.Add(time.Minute)); !p.Trusted || p.Blocked {
			t.Fatalf("offence %d from a trusted source: %+v; want trusted", o, p)
		}
	}
	if _, ok := g.Blocked(src, t0.Add(time.Minute)); ok {
		t.Fatal("trusted source blocked")
	}
	for range 2 {
		if p := g.Penalise(src, AuthFailed, t0.Add(time.Minute)); p.Trusted {
			t.Fatal("a failed login was forgiven")
		}
	}
	if p := g.Penalise(src, AuthFailed, t0.Add(time.Minute)); !p.Blocked {
		t.Errorf("three failed logins (15 s): %+v; want blocked", p)
	}
	if p := g.Penalise(other, Silent, t0.Add(time.Minute)); p.Trusted {
		t.Error("another source was trusted")
	}
	g.Trust(other, t0)
	if p := g.Penalise(other, Silent, t0.Add(10*time.Minute)); p.Trusted {
		t.Error("trusted 10 minutes after its login")
	}
}

// TestUnknownSourceNotPenalised: the zero Source (an address that is not
// TCP) is neither charged nor trusted.
func TestUnknownSourceNotPenalised(t *testing.T) {
	g := newGate(t, Options{})
	g.Trust(Source{}, t0)
	for range 5 {
		if p := g.Penalise(Source{}, Silent, t0); p.Blocked || p.Trusted {
			t.Fatalf("unknown source: %+v", p)
		}
	}
}

// TestPenaltyTableBounded: beyond 65536 sources new ones are not
// remembered (neither penalised nor trusted) until entries expire; the
// table is swept at most once a second.
func TestPenaltyTableBounded(t *testing.T) {
	g := newGate(t, Options{PenaltyMax: time.Minute})
	member := func(i int) Source { return MemberSource("h"+strconv.Itoa(i), "") }
	for i := range maxPenalised {
		g.Penalise(member(i), AuthFailed, t0)
		g.Trust(member(i), t0)
	}
	extra := member(maxPenalised)
	g.Penalise(extra, AuthFailed, t0)
	g.Penalise(extra, AuthFailed, t0)
	if p := g.Penalise(extra, AuthFailed, t0); p.Blocked {
		t.Error("a source beyond the bound was remembered")
	}
	g.Trust(extra, t0)
	if g.pen.trusted(extra, t0) {
		t.Error("a source beyond the bound was trusted")
	}
	// The first ones expire (5 s penalties; trust for 10 minutes).
	later := t0.Add(6 * time.Second)
	for range 3 {
		g.Penalise(extra, AuthFailed, later)
	}
	if _, ok := g.Blocked(extra, later); !ok {
		t.Error("once the table had expired entries, a new source was still not remembered")
	}
	g.pen.mu.Lock()
	n, trusted := len(g.pen.m), len(g.pen.good)
	g.pen.mu.Unlock()
	if n != 1 || trusted != maxPenalised {
		t.Errorf("after the sweep: %d penalised, %d trusted; want 1 and %d", n, trusted, maxPenalised)
	}
}
