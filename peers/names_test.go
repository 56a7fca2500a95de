package peers

import (
	"os"
	"path/filepath"
	"testing"
)

// The book survives a restart of the receiver: a stranger who claims a
// known name while its owner is away holds it only until the owner is
// back, and never becomes its owner.
func TestNameBookGivesNamesBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "known_names")
	book, err := OpenNameBook(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry("")
	r.SetNameBook(book, func(err error) { t.Error(err) })
	alice := Peer{ID: "SHA256:alice", Name: "alice", Source: SourceLAN}
	r.Upsert(alice)
	if e, _ := r.ByID(alice.ID); e.DisplayName != "alice" {
		t.Fatalf("alice is %q", e.DisplayName)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("book file: %v, %v; want mode 0600", fi, err)
	}

	// A new receiver run with the same book; the stranger is first.
	book, err = OpenNameBook(path)
	if err != nil {
		t.Fatal(err)
	}
	r = NewRegistry("")
	r.SetNameBook(book, nil)
	stranger := Peer{ID: "SHA256:mallory", Name: "alice", Source: SourceLAN}
	r.Upsert(stranger)
	r.Upsert(stranger) // a refresh must not make it the owner
	if owner, _ := book.Owner("alice"); owner != alice.ID {
		t.Fatalf("the book gives alice to %s", owner)
	}
	if e, _ := r.ByID(stranger.ID); e.DisplayName != "alice-mallory" {
		t.Errorf("the stranger is %q, want alice-mallory", e.DisplayName)
	}
	r.Upsert(alice)
	if e, _ := r.ByID(alice.ID); e.DisplayName != "alice" {
		t.Errorf("alice came back as %q", e.DisplayName)
	}

	// A stranger holding the name before the book was consulted gives it
	// back when its owner appears.
	r = NewRegistry("")
	r.Upsert(stranger)
	r.SetNameBook(book, nil)
	r.Upsert(alice)
	if e, _ := r.ByID(alice.ID); e.DisplayName != "alice" {
		t.Errorf("alice came back as %q", e.DisplayName)
	}
	if e, _ := r.ByID(stranger.ID); e.DisplayName != "alice-mallory" {
		t.Errorf("the stranger is %q, want alice-mallory", e.DisplayName)
	}
	if e, ok := r.Get("alice"); !ok || e.ID != alice.ID {
		t.Errorf("Get(alice) = %v, %v", e.ID, ok)
	}
	// The journal says so, in an order that replays correctly.
	changes, _, ok := r.Changes(0)
	if !ok || len(changes) != 4 {
		t.Fatalf("changes %v, %v", changes, ok)
	}
	names := map[string]string{}
	for _, c := range changes {
		if c.Removed {
			delete(names, c.Name)
		} else {
			names[c.Name] = c.ID
		}
	}
	if names["alice"] != alice.ID || names["alice-mallory"] != stranger.ID || len(names) != 2 {
		t.Errorf("replayed names %v", names)
	}
}

// The book holds at most MaxKnownNames names and skips junk lines.
func TestNameBookBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_names")
	junk := "no tabs\nbad\tid\t1\n../x\tSHA256:a\t1\n"
	if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
		t.Fatal(err)
	}
	book, err := OpenNameBook(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(book.byName) != 0 {
		t.Fatalf("junk lines kept: %v", book.byName)
	}
	for i := range MaxKnownNames + 50 {
		if err := book.Seen("n"+itoa(i), "SHA256:k"+itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	book, err = OpenNameBook(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(book.byName) > MaxKnownNames {
		t.Errorf("%d names kept, at most %d", len(book.byName), MaxKnownNames)
	}
}
