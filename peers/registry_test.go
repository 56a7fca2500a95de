package peers

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestSanitizeName(t *testing.T) {
	cases := map[string]string{
		"alice":                  "alice",
		"":                       "peer",
		".":                      "peer",
		"..":                     "peer",
		"...":                    "peer",
		"../etc":                 ".._etc",
		"a/b":                    "a_b",
		"nul\x00byte":            "nul_byte",
		"bell\a":                 "bell_",
		"  spaced  ":             "spaced",
		"tab\there":              "tab_here",
		"bad\xffutf8":            "bad_utf8",
		strings.Repeat("x", 100): strings.Repeat("x", MaxNameLen),
		strings.Repeat("é", 40):  strings.Repeat("é", 32),
		"back\\slash":            "back_slash",
		"\u202eevil":             "_evil",
		"zero\u200bwidth":        "zero_width",
		"ünïcødé":                "ünïcødé",
		"name with spaces":       "name with spaces",
		"\n\r":                   "__",
		"/":                      "_",
	}
	for in, want := range cases {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryUniqueNamesAndTakeover(t *testing.T) {
	r := NewRegistry("SHA256:self")
	if r.Upsert(Peer{ID: "SHA256:self", Name: "me"}) {
		t.Fatal("own advert was accepted")
	}
	r.Upsert(Peer{ID: "SHA256:aaaa1111bbbb", Name: "alice"})
	r.Upsert(Peer{ID: "SHA256:cccc2222dddd", Name: "alice"})
	r.Upsert(Peer{ID: "SHA256:eeee/+33ffff", Name: "alice"})
	got := r.List()
	names := []string{}
	for _, e := range got {
		names = append(names, e.DisplayName)
	}
	want := []string{"alice", "alice-cccc2222", "alice-eeee33ff"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("names = %v, want %v", names, want)
	}
	// A refresh by the second claimant does not take over the bare name.
	r.Upsert(Peer{ID: "SHA256:cccc2222dddd", Name: "alice", Addrs: []string{"x:1"}})
	if e, _ := r.Get("alice"); e.ID != "SHA256:aaaa1111bbbb" {
		t.Fatalf("alice now belongs to %s", e.ID)
	}
	r.Remove("SHA256:aaaa1111bbbb")
	if _, ok := r.Get("alice"); ok {
		t.Fatal("removed peer still listed")
	}
}

func TestRegistryExpiryAndAuthorizedKey(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRegistry("")
	r.SetClock(func() time.Time { return now })
	k := testenv.NewSigner(t).PublicKey()
	other := testenv.NewSigner(t).PublicKey()
	ch, stop := r.Watch()
	defer stop()
	r.Upsert(Peer{ID: "SHA256:p1", Name: "bob", ClientKeys: []ssh.PublicKey{k}, Expires: now.Add(time.Minute)})
	select {
	case <-ch:
	default:
		t.Fatal("no change notification")
	}
	if name, ok := r.AuthorizedKey(k); !ok || name != "bob" {
		t.Fatalf("AuthorizedKey = %q %v", name, ok)
	}
	if _, ok := r.AuthorizedKey(other); ok {
		t.Fatal("unknown key authorized")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := r.AuthorizedKey(k); ok {
		t.Fatal("key of an expired peer still authorized")
	}
	if n := len(r.List()); n != 0 {
		t.Fatalf("%d peers listed after expiry", n)
	}
	if r.Upsert(Peer{ID: "SHA256:p2", Name: "old", Expires: now.Add(-time.Second)}) {
		t.Fatal("already expired advert accepted")
	}
}

// A client-only advert lets its key in but is not a peer: not listed, no
// directory name, and it cannot take a name from a share, before or after
// the share arrives.
func TestRegistryClientOnly(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRegistry("")
	r.SetClock(func() time.Time { return now })
	ck, sk := testenv.NewSigner(t).PublicKey(), testenv.NewSigner(t).PublicKey()
	// The client arrives first, asking for the name the share wants.
	if !r.Upsert(Peer{ID: "SHA256:client1", Name: "alice", ClientKeys: []ssh.PublicKey{ck}, ClientOnly: true, Expires: now.Add(time.Minute)}) {
		t.Fatal("a new client-only advert is not reported as new")
	}
	r.Upsert(Peer{ID: "SHA256:share1", Name: "alice", Addrs: []string{"x:1"}, ClientKeys: []ssh.PublicKey{sk}, Expires: now.Add(time.Hour)})
	if who, ok := r.AuthorizedKey(ck); !ok || who != "alice (client)" {
		t.Fatalf("client key: AuthorizedKey = %q %v, want alice (client)", who, ok)
	}
	if who, ok := r.AuthorizedKey(sk); !ok || who != "alice" {
		t.Fatalf("share's client key: AuthorizedKey = %q %v", who, ok)
	}
	list := r.List()
	if len(list) != 1 || list[0].ID != "SHA256:share1" || list[0].DisplayName != "alice" {
		t.Fatalf("List = %+v, want only the share, named alice", list)
	}
	if e, ok := r.Get("alice"); !ok || e.ID != "SHA256:share1" {
		t.Fatalf("Get(alice) = %s %v, want the share", e.ID, ok)
	}
	if _, ok := r.ByID("SHA256:client1"); ok {
		t.Fatal("ByID finds a client-only entry")
	}
	// A second share with the name still gets a suffix: the client took
	// nothing, and the first share keeps the bare name.
	r.Upsert(Peer{ID: "SHA256:share2", Name: "alice"})
	if e, ok := r.Get("alice"); !ok || e.ID != "SHA256:share1" {
		t.Fatalf("after a second share, alice is %s", e.ID)
	}
	cl := r.Clients()
	if len(cl) != 1 || cl[0].ID != "SHA256:client1" || cl[0].DisplayName != "alice" {
		t.Fatalf("Clients = %+v", cl)
	}
	// Refreshing the client changes nothing visible; RemoveFrom another
	// source leaves it; expiry drops it and its key.
	if r.Upsert(Peer{ID: "SHA256:client1", Name: "alice", ClientKeys: []ssh.PublicKey{ck}, ClientOnly: true, Expires: now.Add(time.Minute)}) {
		t.Fatal("a refreshed client-only advert is reported as new")
	}
	r.RemoveFrom("SHA256:client1", SourceLAN)
	if _, ok := r.AuthorizedKey(ck); !ok {
		t.Fatal("RemoveFrom another source dropped the client")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := r.AuthorizedKey(ck); ok {
		t.Fatal("the key of an expired client-only advert is still let in")
	}
	if n := len(r.Clients()); n != 0 {
		t.Fatalf("%d clients after expiry", n)
	}
	if next := r.nextExpiry(); !next.Equal(now.Add(58 * time.Minute)) {
		t.Fatalf("next expiry %v", next)
	}
}

// A client with the ID of a listed share (the same signing key) turns the
// share into a client: its directory and name go; RemoveFrom drops clients.
func TestRegistryShareBecomesClient(t *testing.T) {
	r := NewRegistry("")
	k := testenv.NewSigner(t).PublicKey()
	r.Upsert(Peer{ID: "SHA256:x", Name: "bob", Addrs: []string{"x:1"}, Source: SourceDiscord})
	r.Upsert(Peer{ID: "SHA256:x", Name: "bob", ClientKeys: []ssh.PublicKey{k}, ClientOnly: true, Source: SourceDiscord})
	if len(r.List()) != 0 {
		t.Fatalf("List = %+v after the share became a client", r.List())
	}
	r.Upsert(Peer{ID: "SHA256:y", Name: "bob"})
	if e, _ := r.Get("bob"); e.ID != "SHA256:y" {
		t.Fatalf("the name bob was not freed: %s", e.ID)
	}
	r.RemoveFrom("SHA256:x", SourceDiscord)
	if _, ok := r.AuthorizedKey(k); ok || len(r.Clients()) != 0 {
		t.Fatal("RemoveFrom left the client")
	}
}

// TestRegistryRerun: Upsert reports a known peer whose client keys
// changed (a new run with a lasting host key) as new, so LAN discovery
// announces itself to it at once: the new run has not heard of us and
// would refuse our key until our next periodic advert.
func TestRegistryRerun(t *testing.T) {
	r := NewRegistry("")
	host := testenv.NewSigner(t)
	p := Peer{ID: ssh.FingerprintSHA256(host.PublicKey()), Name: "alice", HostKey: host.PublicKey(),
		ClientKeys: []ssh.PublicKey{testenv.NewSigner(t).PublicKey()}, Expires: time.Now().Add(time.Minute)}
	if !r.Upsert(p) {
		t.Fatal("first advert not new")
	}
	if r.Upsert(p) {
		t.Error("the same advert again reported as new")
	}
	p.ClientKeys = []ssh.PublicKey{testenv.NewSigner(t).PublicKey()}
	if !r.Upsert(p) {
		t.Error("a new run (new client keys) not reported")
	}
	p.Instance = "second-run" // a share-only run has no client keys to tell by
	if !r.Upsert(p) {
		t.Error("a new run (new instance) not reported")
	}
	if r.Upsert(p) {
		t.Error("the same run again reported as new")
	}
	if got := len(r.List()); got != 1 {
		t.Errorf("%d peers listed; want the one", got)
	}
}
