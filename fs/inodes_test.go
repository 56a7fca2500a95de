//go:build linux

package fs

import "testing"

// TestInodeBudgetOrder: past the budget, files the kernel looked up are
// pushed out before files READDIRPLUS described, and those before
// directories, the oldest first; a node being pushed out counts until the kernel forgets
// it, and one forgotten is never picked.
func TestInodeBudgetOrder(t *testing.T) {
	b := newInodeBudget(2)
	described1, lookedUp1, described2, lookedUp2 := &node{rel: "d1"}, &node{rel: "l1"}, &node{rel: "d2"}, &node{rel: "l2"}
	b.add(described1, describedFile)
	b.add(lookedUp1, lookedUpFile)
	if n := b.next(); n != nil {
		t.Fatalf("within the budget, %s was picked", n.rel)
	}
	b.add(described2, describedFile)
	b.add(lookedUp2, lookedUpFile)
	for _, want := range []*node{lookedUp1, lookedUp2} {
		if n := b.next(); n != want {
			t.Fatalf("picked %v, want %s", n, want.rel)
		}
	}
	if n := b.next(); n != nil {
		t.Fatalf("with two being pushed out, %s was picked too", n.rel)
	}
	if got := b.count(); got != 4 {
		t.Fatalf("count %d before the kernel forgot anything, want 4", got)
	}
	b.forgot(lookedUp1)
	b.forgot(lookedUp2)
	b.forgot(described2) // forgotten on its own, never to be picked
	if got := b.count(); got != 1 {
		t.Fatalf("count %d after three were forgotten, want 1", got)
	}
	dir, described3 := &node{rel: "dir"}, &node{rel: "d3"}
	b.add(dir, directory)
	b.add(described3, describedFile)
	b.add(&node{rel: "d4"}, describedFile)
	for _, want := range []*node{described1, described3} {
		if n := b.next(); n != want {
			t.Fatalf("picked %v, want the oldest described entry %s (before the older directory)", n, want.rel)
		}
	}
}
