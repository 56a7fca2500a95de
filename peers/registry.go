package peers

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Entry is a live peer with the unique display name the registry gave it.
type Entry struct {
	Peer
	// DisplayName is unique among live peers and safe as a path component.
	// For a client-only entry (see Clients) it is only the sanitized
	// requested name: clients claim no name, so they never take one away
	// from a share.
	DisplayName string
	// Added is when the peer first appeared.
	Added time.Time
}

// Registry is the set of live peers fed by discovery and the command line.
// Readers poll List after a notification from Watch; all methods are safe
// for concurrent use and never block on the network.
//
// Client-only adverts (Peer.ClientOnly) are kept apart: their keys count
// for AuthorizedKey, but List, Get and ByID never return them, so they get
// no directory in a mount and claim no display name.
type Registry struct {
	mu       sync.Mutex
	now      func() time.Time
	self     string            // own ID, never listed
	byID     map[string]*Entry // shares: listed, with a unique name
	clients  map[string]*Entry // client-only: keys only, never listed
	names    map[string]string // display name -> ID (shares only)
	watchers map[chan struct{}]struct{}
	timer    chan struct{}   // pokes Run when expiries change
	hidden   map[string]bool // shares no route reached (suspect.go)

	// nextExp is no later than the earliest expiry of any entry (zero:
	// none expires), so lookups skip the O(n) expiry scan until then.
	nextExp time.Time

	// The journal of listed names (see Changes): seq counts changes,
	// journal holds the last journalLen, the oldest being journalFrom+1.
	seq         uint64
	journal     []NameChange
	journalFrom uint64

	book    *NameBook   // names remembered across runs; nil: none
	bookErr func(error) // the program's log limiter sums up a flood
}

// SetNameBook makes the registry remember which key held each name (see
// NameBook) and give a known name back to its key. onErr, if not nil,
// hears of failed writes of the book.
func (r *Registry) SetNameBook(b *NameBook, onErr func(error)) {
	r.mu.Lock()
	r.book, r.bookErr = b, onErr
	r.mu.Unlock()
}

// journalLen bounds the change journal; a reader further behind lists
// everything again.
const journalLen = 4096

// NameChange is one change to the listed peers: Name now shows the peer
// ID, or (Removed) Name is gone.
type NameChange struct {
	Name, ID string
	Removed  bool
}

// NewRegistry returns an empty registry. selfID, when non-empty, is the
// local instance's own ID; adverts carrying it are ignored.
func NewRegistry(selfID string) *Registry {
	return &Registry{
		now:      time.Now,
		self:     selfID,
		byID:     map[string]*Entry{},
		clients:  map[string]*Entry{},
		names:    map[string]string{},
		watchers: map[chan struct{}]struct{}{},
		timer:    make(chan struct{}, 1),
	}
}

// SetClock replaces time.Now, for tests.
func (r *Registry) SetClock(now func() time.Time) {
	r.mu.Lock()
	r.now = now
	r.mu.Unlock()
}

// Upsert adds p or refreshes the peer with the same ID. A refreshed peer
// keeps its display name. It reports whether the peer is new, or a new
// run of a known peer (a host key that lasts across runs, with a new
// Instance or new per-run client keys): either way it has not heard of
// us yet.
func (r *Registry) Upsert(p Peer) bool {
	if p.ID == "" || p.ID == r.self {
		return false
	}
	p = p.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	p.Updated = now
	if !p.Expires.IsZero() && !p.Expires.After(now) {
		return false
	}
	if p.ClientOnly {
		return r.upsertClientLocked(p, now)
	}
	// The same key advertising a share again is a share from now on.
	delete(r.clients, p.ID)
	r.noteExpiryLocked(p.Expires)
	e, ok := r.byID[p.ID]
	rerun := false
	if ok {
		rerun = e.Peer.Instance != p.Instance || !sameKeys(e.Peer.ClientKeys, p.ClientKeys)
		e.Peer = p
		r.unhideLocked(e)
		if e.DisplayName == SanitizeName(p.Name) && p.Source != SourceFlag {
			r.noteBookLocked(e.DisplayName, p)
		}
	} else {
		e = &Entry{Peer: p, Added: now, DisplayName: r.claimName(p)}
		r.byID[p.ID] = e
		r.names[e.DisplayName] = p.ID
		r.journalLocked(NameChange{Name: e.DisplayName, ID: p.ID})
	}
	r.changedLocked()
	return !ok || rerun
}

// sameKeys reports whether a and b hold the same keys in the same order.
func sameKeys(a, b []ssh.PublicKey) bool {
	return slices.EqualFunc(a, b, func(x, y ssh.PublicKey) bool {
		return bytes.Equal(x.Marshal(), y.Marshal())
	})
}

// claimName picks the display name of a new share. Without a name book it
// is uniqueName's. With one, a name the book gives to another key is not
// handed out (the claimant gets a suffix), a name the book gives to p's
// key is taken back from a stranger holding it (who gets a suffix
// instead), and a free name nobody owns yet becomes p's. Names given with
// --peer are the user's own: never remembered, never taken away.
func (r *Registry) claimName(p Peer) string {
	base := SanitizeName(p.Name)
	r.yieldHiddenLocked(base)
	if r.book == nil || p.Source == SourceFlag {
		return r.uniqueName(p)
	}
	owner, known := r.book.Owner(base)
	holderID, taken := r.names[base]
	switch {
	case known && owner != p.ID:
		return r.suffixedName(p.ID, base)
	case known && taken:
		holder := r.byID[holderID]
		if holder == nil || holder.Source == SourceFlag {
			return r.suffixedName(p.ID, base)
		}
		// Give the stranger a suffixed name; base is p's again.
		r.journalLocked(NameChange{Name: base, ID: holderID, Removed: true})
		r.names[base] = p.ID
		holder.DisplayName = r.suffixedName(holderID, base)
		r.names[holder.DisplayName] = holderID
		r.journalLocked(NameChange{Name: holder.DisplayName, ID: holderID})
		r.noteBookLocked(base, p)
		return base
	case taken:
		return r.suffixedName(p.ID, base)
	}
	r.noteBookLocked(base, p)
	return base
}

// noteBookLocked tells the book that p holds name. A name the book does
// not take (full, or too many new ones from p's origin) stays p's for
// this run; a refresh of p tries again.
func (r *Registry) noteBookLocked(name string, p Peer) {
	if r.book == nil || !strings.HasPrefix(p.ID, "SHA256:") {
		return
	}
	err := r.book.Seen(name, p.ID, p.Origin)
	if err != nil && r.bookErr != nil {
		r.bookErr(err)
	}
}

// noteExpiryLocked keeps nextExp no later than exp.
func (r *Registry) noteExpiryLocked(exp time.Time) {
	if !exp.IsZero() && (r.nextExp.IsZero() || exp.Before(r.nextExp)) {
		r.nextExp = exp
	}
}

// journalLocked records a change of the listed names.
func (r *Registry) journalLocked(c NameChange) {
	r.seq++
	if len(r.journal) == journalLen {
		copy(r.journal, r.journal[journalLen/2:])
		r.journal = r.journal[:journalLen/2]
		r.journalFrom += journalLen / 2
	}
	r.journal = append(r.journal, c)
}

// Changes returns the changes to the listed names after the one numbered
// since (0: from the start) and the number of the last one. ok is false
// when the journal no longer reaches back that far: list everything
// again with ListSeq. Applying changes in order keeps a copy of the names
// right at O(changes) cost.
func (r *Registry) Changes(since uint64) (changes []NameChange, last uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	if since < r.journalFrom || since > r.seq {
		return nil, r.seq, false
	}
	return append([]NameChange(nil), r.journal[since-r.journalFrom:]...), r.seq, true
}

// ListSeq is List, with the number of the last change it reflects (for
// Changes).
func (r *Registry) ListSeq() ([]Entry, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	out := r.listedLocked()
	sort.Slice(out, func(i, j int) bool { return out[i].DisplayName < out[j].DisplayName })
	return out, r.seq
}

// upsertClientLocked records a client-only advert. A share with the same
// ID that now advertises as a client only gives up its directory and name.
func (r *Registry) upsertClientLocked(p Peer, now time.Time) bool {
	if _, wasShare := r.byID[p.ID]; wasShare {
		r.removeLocked(p.ID)
	}
	r.noteExpiryLocked(p.Expires)
	e, ok := r.clients[p.ID]
	if ok {
		e.Peer = p
		e.DisplayName = SanitizeName(p.Name)
	} else {
		r.clients[p.ID] = &Entry{Peer: p, Added: now, DisplayName: SanitizeName(p.Name)}
	}
	r.changedLocked()
	return !ok
}

// uniqueName gives the first claimant the bare sanitized name; later ones
// get a suffix from their own ID, so no advert can take over a name.
func (r *Registry) uniqueName(p Peer) string {
	base := SanitizeName(p.Name)
	if _, taken := r.names[base]; !taken {
		return base
	}
	return r.suffixedName(p.ID, base)
}

// suffixedName is base with a suffix from id, unique among the names.
func (r *Registry) suffixedName(id, base string) string {
	p := Peer{ID: id}
	suffix := "-" + shortID(p.ID)
	if len(base)+len(suffix) > MaxNameLen {
		base = SanitizeName(base[:MaxNameLen-len(suffix)])
	}
	name := base + suffix
	for i := 2; ; i++ {
		if _, taken := r.names[name]; !taken {
			return name
		}
		name = base + suffix + "-" + itoa(i)
	}
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[n:])
		}
	}
}

// Remove drops the peer (or client-only entry) with the given ID, if
// present.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(id)
}

// RemoveFrom drops the peer or client-only entry with the given ID if its
// latest advert came from source, so one discovery method cannot drop what
// another one still sees.
func (r *Registry) RemoveFrom(id, source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byID[id]; ok && e.Source == source {
		r.removeLocked(id)
	}
	if e, ok := r.clients[id]; ok && e.Source == source {
		r.removeLocked(id)
	}
}

func (r *Registry) removeLocked(id string) {
	if _, ok := r.clients[id]; ok {
		delete(r.clients, id)
		r.changedLocked()
	}
	e, ok := r.byID[id]
	if !ok {
		return
	}
	delete(r.byID, id)
	delete(r.names, e.DisplayName)
	delete(r.hidden, id)
	r.journalLocked(NameChange{Name: e.DisplayName, ID: id, Removed: true})
	r.changedLocked()
}

// List returns the live peers sorted by display name.
func (r *Registry) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	out := r.listedLocked()
	sort.Slice(out, func(i, j int) bool { return out[i].DisplayName < out[j].DisplayName })
	return out
}

// snapshot copies the entries of m, deeply enough that callers may keep
// them after the lock is released.
func snapshot(m map[string]*Entry) []Entry {
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		c := *e
		c.Peer = e.Peer.Clone()
		out = append(out, c)
	}
	return out
}

// Clients returns the live client-only entries (instances that share
// nothing but whose keys may log in), sorted by name, then ID.
func (r *Registry) Clients() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	out := snapshot(r.clients)
	sort.Slice(out, func(i, j int) bool {
		if out[i].DisplayName != out[j].DisplayName {
			return out[i].DisplayName < out[j].DisplayName
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Get returns the live peer with the given display name.
func (r *Registry) Get(name string) (Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	id, ok := r.names[name]
	if !ok || r.hidden[id] {
		return Entry{}, false
	}
	e := *r.byID[id]
	e.Peer = e.Peer.Clone()
	return e, true
}

// ByID returns the live peer with the given ID.
func (r *Registry) ByID(id string) (Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	e, ok := r.byID[id]
	if !ok {
		return Entry{}, false
	}
	c := *e
	c.Peer = e.Peer.Clone()
	return c, true
}

// AuthorizedKey reports whether key is a client key of a live peer or
// client-only advert, and whose ("NAME (client)" for a client-only one).
// The share calls it (through a small interface) on every login.
func (r *Registry) AuthorizedKey(key ssh.PublicKey) (string, bool) {
	want := key.Marshal()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	for _, e := range r.byID {
		if hasKey(e, want) {
			return e.DisplayName, true
		}
	}
	for _, e := range r.clients {
		if hasKey(e, want) {
			return e.DisplayName + " (client)", true
		}
	}
	return "", false
}

func hasKey(e *Entry, want []byte) bool {
	for _, k := range e.ClientKeys {
		if bytes.Equal(k.Marshal(), want) {
			return true
		}
	}
	return false
}

// Watch returns a channel that receives a value (coalesced) after every
// change, and a function to stop watching.
func (r *Registry) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		r.mu.Unlock()
	}
}

func (r *Registry) changedLocked() {
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	select {
	case r.timer <- struct{}{}:
	default:
	}
}

// expireLocked drops expired entries. It scans only once the earliest
// expiry may have come (refreshes only postpone expiries, so nextExp may
// be early but never late), which keeps lookups O(1) with many peers.
func (r *Registry) expireLocked() {
	now := r.now()
	if r.nextExp.IsZero() || now.Before(r.nextExp) {
		return
	}
	var next time.Time
	for _, m := range []map[string]*Entry{r.byID, r.clients} {
		for id, e := range m {
			switch {
			case e.Expires.IsZero():
			case !e.Expires.After(now):
				r.removeLocked(id)
			case next.IsZero() || e.Expires.Before(next):
				next = e.Expires
			}
		}
	}
	r.nextExp = next
}

// nextExpiry returns when the next expiry scan is due, or zero.
func (r *Registry) nextExpiry() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nextExp
}

// Run drops peers when their adverts expire, so watchers hear of it without
// polling. It returns when ctx is done.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		r.expireLocked()
		r.mu.Unlock()
		wait := time.Hour
		if next := r.nextExpiry(); !next.IsZero() {
			wait = time.Until(next) + 10*time.Millisecond
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.timer:
		}
	}
}
