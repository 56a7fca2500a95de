package peers

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

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
	k := newKey(t)
	other := newKey(t)
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
