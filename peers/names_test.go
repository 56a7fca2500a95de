package peers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// The book skips junk lines, and of a file longer than MaxKnownNames
// (edited by hand) keeps the most recently seen names.
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
	var sb strings.Builder
	now := time.Now().Unix()
	for i := range MaxKnownNames + 50 {
		fmt.Fprintf(&sb, "n%d\tSHA256:k%d\t%d\n", i, i, now-int64(i))
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if book, err = OpenNameBook(path); err != nil {
		t.Fatal(err)
	}
	if len(book.byName) != MaxKnownNames {
		t.Errorf("%d names kept, want %d", len(book.byName), MaxKnownNames)
	}
	if _, ok := book.Owner("n0"); !ok {
		t.Error("the most recently seen name was dropped")
	}
	if _, ok := book.Owner(fmt.Sprintf("n%d", MaxKnownNames)); ok {
		t.Error("a name older than the newest MaxKnownNames was kept")
	}
}

// clock is a settable time for the book's and registry's tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_800_000_000, 0)} }
func fakeID(i int) string                { return "SHA256:k" + itoa(i) }
func openTestBook(t *testing.T, c *clock) *NameBook {
	t.Helper()
	b, err := openNameBook(filepath.Join(t.TempDir(), "known_names"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A full book keeps its names and remembers no newcomer; names leave only
// by age (KnownNameTTL unseen), and then newcomers are remembered again.
func TestNameBookFullKeepsNamesByAge(t *testing.T) {
	c := newClock()
	b := openTestBook(t, c)
	if err := b.Seen("alice", "SHA256:alice", "discord:a"); err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the book (set in memory: MaxKnownNames file
	// writes would only slow the test).
	c.advance(time.Hour)
	for i := range MaxKnownNames - 1 {
		b.byName["n"+itoa(i)] = knownName{id: fakeID(i), seen: c.now()}
	}

	c.advance(time.Hour)
	err := b.Seen("newcomer", "SHA256:new", "discord:n")
	if !errors.Is(err, ErrNameBookFull) {
		t.Fatalf("a newcomer to a full book: %v, want ErrNameBookFull", err)
	}
	if _, ok := b.Owner("newcomer"); ok {
		t.Error("a full book remembered a newcomer")
	}
	if owner, _ := b.Owner("alice"); owner != "SHA256:alice" {
		t.Errorf("the least recently seen name went to %q, want alice's key", owner)
	}
	if err := b.Seen("alice", "SHA256:alice", "discord:a"); err != nil {
		t.Errorf("a full book refused its owner's refresh: %v", err)
	}

	// Just before the others age out, the book is still full.
	c.advance(KnownNameTTL - 2*time.Hour)
	if err := b.Seen("newcomer", "SHA256:new", "discord:n"); !errors.Is(err, ErrNameBookFull) {
		t.Fatalf("a newcomer before any name aged out: %v, want ErrNameBookFull", err)
	}
	if err := b.Seen("alice", "SHA256:alice", "discord:a"); err != nil {
		t.Fatal(err)
	}
	// Once they are unseen for longer than the TTL, they make room;
	// alice, refreshed, stays.
	c.advance(3 * time.Hour)
	if err := b.Seen("newcomer", "SHA256:new", "discord:n"); err != nil {
		t.Fatalf("a newcomer after the names aged out: %v", err)
	}
	if owner, _ := b.Owner("newcomer"); owner != "SHA256:new" {
		t.Errorf("the newcomer is not remembered: %q", owner)
	}
	if owner, _ := b.Owner("alice"); owner != "SHA256:alice" {
		t.Errorf("alice's refreshed name went to %q", owner)
	}
	if len(b.byName) != 2 {
		t.Errorf("%d names after the others aged out, want 2", len(b.byName))
	}
	reread, err := openNameBook(b.path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(reread.byName) != 2 || reread.byName["alice"].id != "SHA256:alice" || reread.byName["newcomer"].id != "SHA256:new" {
		t.Errorf("the file holds %v", reread.byName)
	}
}

// One origin adds at most MaxNewNamesPerOrigin names per NewNameWindow;
// refreshes of its names are not counted, other origins are not held
// back, and a name refused now is taken once the window has passed.
func TestNameBookPerOriginCap(t *testing.T) {
	c := newClock()
	b := openTestBook(t, c)
	for i := range MaxNewNamesPerOrigin {
		if err := b.Seen("flood-"+itoa(i), fakeID(i), "discord:bot"); err != nil {
			t.Fatalf("name %d: %v", i, err)
		}
	}
	over := "flood-" + itoa(MaxNewNamesPerOrigin)
	if err := b.Seen(over, "SHA256:over", "discord:bot"); !errors.Is(err, ErrTooManyNewNames) {
		t.Fatalf("name %d of one origin: %v, want ErrTooManyNewNames", MaxNewNamesPerOrigin+1, err)
	}
	if _, ok := b.Owner(over); ok {
		t.Error("a name over the origin's cap was remembered")
	}
	c.advance(time.Hour)
	if err := b.Seen("flood-0", fakeID(0), "discord:bot"); err != nil {
		t.Errorf("a refresh at the cap: %v", err)
	}
	if err := b.Seen("alice", "SHA256:alice", "discord:alice"); err != nil {
		t.Errorf("another origin was held back: %v", err)
	}
	c.advance(NewNameWindow - time.Hour - time.Second)
	if err := b.Seen(over, "SHA256:over", "discord:bot"); !errors.Is(err, ErrTooManyNewNames) {
		t.Fatalf("just before the window passed: %v", err)
	}
	c.advance(time.Second)
	if err := b.Seen(over, "SHA256:over", "discord:bot"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if owner, _ := b.Owner(over); owner != "SHA256:over" {
		t.Errorf("the name is %q's after the window", owner)
	}
}

// The origins counted at once are bounded (a LAN host can send from many
// addresses): beyond maxOrigins in one window, new origins add nothing.
func TestNameBookOriginsBounded(t *testing.T) {
	c := newClock()
	b := openTestBook(t, c)
	for i := range maxOrigins {
		if err := b.Seen("n"+itoa(i), fakeID(i), "lan:"+itoa(i)); err != nil {
			t.Fatalf("origin %d: %v", i, err)
		}
	}
	if err := b.Seen("one-more", "SHA256:more", "lan:more"); !errors.Is(err, ErrTooManyNewNames) {
		t.Fatalf("origin %d: %v, want ErrTooManyNewNames", maxOrigins+1, err)
	}
	if len(b.origins) > maxOrigins {
		t.Errorf("%d origins counted, at most %d", len(b.origins), maxOrigins)
	}
	c.advance(NewNameWindow)
	if err := b.Seen("one-more", "SHA256:more", "lan:more"); err != nil {
		t.Fatalf("a new origin after the window: %v", err)
	}
}

// Through the registry: a flood of fresh keys from one author while alice
// is away leaves her name hers; the flood's peers are all listed (with
// working names for the run) but only MaxNewNamesPerOrigin are
// remembered; a stranger claiming alice's name gets a suffix; each
// refusal is reported (the program's log limiter sums them up).
func TestRegistryFloodKeepsOwner(t *testing.T) {
	c := newClock()
	b := openTestBook(t, c)
	r := NewRegistry("")
	r.SetClock(c.now)
	var reports []error
	r.SetNameBook(b, func(err error) { reports = append(reports, err) })
	alice := Peer{ID: "SHA256:alice", Name: "alice", Source: SourceDiscord, Origin: "discord:alice"}
	r.Upsert(alice)
	r.Remove(alice.ID) // she restarts

	const flood = 1100
	for i := range flood {
		c.advance(time.Millisecond)
		r.Upsert(Peer{ID: fakeID(i), Name: "flood-" + itoa(i), Source: SourceDiscord, Origin: "discord:bot"})
	}
	if n := len(r.List()); n != flood {
		t.Errorf("%d peers listed after the flood, want %d", n, flood)
	}
	if e, _ := r.Get("flood-" + itoa(flood-1)); e.ID != fakeID(flood-1) {
		t.Errorf("the last flood peer has no working name: %v", e.ID)
	}
	remembered := 0
	for n := range b.byName {
		if strings.HasPrefix(n, "flood-") {
			remembered++
		}
	}
	if remembered != MaxNewNamesPerOrigin {
		t.Errorf("the book remembers %d flood names, want %d", remembered, MaxNewNamesPerOrigin)
	}
	if len(reports) != flood-MaxNewNamesPerOrigin || !errors.Is(reports[0], ErrTooManyNewNames) {
		t.Errorf("%d reports, want %d of ErrTooManyNewNames", len(reports), flood-MaxNewNamesPerOrigin)
	}

	stranger := Peer{ID: "SHA256:mallory", Name: "alice", Source: SourceDiscord, Origin: "discord:mallory"}
	r.Upsert(stranger)
	if e, _ := r.ByID(stranger.ID); e.DisplayName != "alice-mallory" {
		t.Errorf("the stranger is %q, want alice-mallory", e.DisplayName)
	}
	r.Upsert(alice)
	if e, _ := r.ByID(alice.ID); e.DisplayName != "alice" {
		t.Errorf("alice came back as %q", e.DisplayName)
	}
	if owner, _ := b.Owner("alice"); owner != alice.ID {
		t.Errorf("the book gives alice to %q", owner)
	}
}
