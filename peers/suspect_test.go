package peers

import (
	"testing"
	"time"
)

// TestSuspectHidesUntilHeard: a peer no route reached leaves the listing
// (and the change journal says so) unless something newer than the
// failed dial was heard; it keeps its name and its keys, and its next
// advert lists it again. --peer peers stay.
func TestSuspectHidesUntilHeard(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRegistry("")
	r.SetClock(func() time.Time { return now })
	bob := Peer{ID: "SHA256:bob", Name: "bob", Source: SourceLAN, Instance: "run1"}
	flag := Peer{ID: "sftp://x", Name: "x", Source: SourceFlag}
	r.Upsert(bob)
	r.Upsert(flag)
	_, seq := r.ListSeq()

	if r.Suspect(bob.ID, now) {
		t.Fatal("hidden although its advert came with the failed dial, not before")
	}
	now = now.Add(time.Second)
	if !r.Suspect(bob.ID, now) {
		t.Fatal("not hidden after every route failed")
	}
	if r.Suspect(bob.ID, now) {
		t.Error("hidden twice")
	}
	if r.Suspect(flag.ID, now) {
		t.Error("a --peer peer was hidden")
	}
	if l := r.List(); len(l) != 1 || l[0].ID != flag.ID {
		t.Errorf("List = %v, want only the --peer peer", l)
	}
	if _, ok := r.Get("bob"); ok {
		t.Error("Get finds a hidden peer")
	}
	if _, ok := r.ByID(bob.ID); !ok {
		t.Error("a hidden peer lost its entry (its keys and routes)")
	}
	changes, _, ok := r.Changes(seq)
	if !ok || len(changes) != 1 || !changes[0].Removed || changes[0].Name != "bob" {
		t.Errorf("changes = %v, want bob removed", changes)
	}
	// Heard again: listed again under its name.
	now = now.Add(time.Second)
	r.Upsert(bob)
	if e, ok := r.Get("bob"); !ok || e.ID != bob.ID {
		t.Errorf("bob not listed again after a new advert: %v %v", e, ok)
	}
	if r.Hidden(bob.ID) {
		t.Error("still hidden")
	}

	// A dial that reached it lists it again, once.
	now = now.Add(time.Second)
	r.Suspect(bob.ID, now)
	_, seq = r.ListSeq()
	if !r.Heard(bob.ID) || r.Hidden(bob.ID) {
		t.Error("bob still hidden after a dial reached it")
	}
	if r.Heard(bob.ID) {
		t.Error("heard twice")
	}
	if changes, _, ok := r.Changes(seq); !ok || len(changes) != 1 || changes[0].Removed || changes[0].Name != "bob" {
		t.Errorf("changes = %v, want bob listed again", changes)
	}
	if r.Suspect(bob.ID, now) {
		t.Error("hidden again by a dial that began before it was heard")
	}

	// A newcomer (the same member back with a new key) is not kept from
	// the name by a hidden peer: that one gets a suffix.
	now = now.Add(time.Second)
	r.Suspect(bob.ID, now)
	r.Upsert(Peer{ID: "SHA256:newbob", Name: "bob", Source: SourceLAN})
	if e, ok := r.Get("bob"); !ok || e.ID != "SHA256:newbob" {
		t.Errorf("the newcomer did not get the name of a hidden peer: %v %v", e, ok)
	}
	r.Upsert(bob)
	if e, ok := r.ByID(bob.ID); !ok || e.DisplayName == "bob" || r.Hidden(bob.ID) {
		t.Errorf("the old bob back: %+v hidden=%v, want listed under a suffixed name", e, r.Hidden(bob.ID))
	}
}
