package limits

import (
	"testing"
	"time"
)

// TestAdmitMember: with every pre-login slot held by strangers, a stream
// from a member's source still gets in, against a budget of its own of
// the same size; the per-source limit and penalties apply to it, and
// Leave frees its slot, not a stranger's.
func TestAdmitMember(t *testing.T) {
	g := newGate(t, Options{MaxStartups: Startups{Start: 3, Rate: 100, Full: 3}, MaxStartupsPerSource: 2})
	now := time.Now()
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if _, err := g.Admit(addr(ip), nil, now); err != nil {
			t.Fatalf("stranger %s: %v", ip, err)
		}
	}
	if _, err := g.Admit(addr("192.0.2.4"), nil, now); err == nil {
		t.Fatal("a fourth stranger got in at full")
	}
	member := addr("198.51.100.1")
	a, err := g.AdmitMember(member, now)
	if err != nil {
		t.Fatalf("a member at the strangers' full: %v", err)
	}
	if _, err := g.AdmitMember(member, now); err != nil {
		t.Fatalf("the member's second: %v", err)
	}
	if _, err := g.AdmitMember(member, now); err != ErrSourceLogins {
		t.Fatalf("the member's third from one source: %v; want %v", err, ErrSourceLogins)
	}
	if _, err := g.AdmitMember(addr("198.51.100.2"), now); err != nil {
		t.Fatalf("another member's: %v", err)
	}
	if _, err := g.AdmitMember(addr("198.51.100.4"), now); err != ErrStartupsFull {
		t.Fatalf("a member beyond the members' budget: %v; want %v", err, ErrStartupsFull)
	}
	a.Leave()
	if all, fromMember := g.counts(member); all != 3 || fromMember != 1 {
		t.Errorf("after a member's left: %d strangers, %d from the member; want 3 and 1", all, fromMember)
	}
	if _, err := g.AdmitMember(addr("198.51.100.4"), now); err != nil {
		t.Errorf("a member after one left: %v", err)
	}
	penalised := addr("198.51.100.3")
	g.Penalise(penalised, Silent, now)
	g.Penalise(penalised, Silent, now)
	if _, err := g.AdmitMember(penalised, now); err != ErrPenalised {
		t.Errorf("a penalised member source: %v; want %v", err, ErrPenalised)
	}
}
