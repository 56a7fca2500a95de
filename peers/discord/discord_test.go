//go:build linux

package discord

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
)

func TestPeersFindAndLoseEachOther(t *testing.T) {
	e := newEnv(t)
	tokA, idA := e.bot(t)
	tokB, idB := e.bot(t)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob")

	// a learns of b through the gateway, b of a through history.
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	t.Logf("bob's advert reached alice %v after bob's post", time.Since(b.posted).Round(time.Millisecond))
	if !b.has(a.fp) {
		t.Fatal("bob did not read alice's advert from history during Start")
	}
	got, _ := a.reg.ByID(b.fp)
	if got.DisplayName != "bob" || got.Source != peers.SourceDiscord || got.AuthorID != idB {
		t.Errorf("entry %+v", got)
	}
	if got.HostKey == nil || !bytes.Equal(got.HostKey.Marshal(), b.host.PublicKey().Marshal()) || got.HostKeyFingerprint != b.fp {
		t.Error("entry does not pin bob's advertised host key")
	}
	if len(got.ClientKeys) != 1 || !bytes.Equal(got.ClientKeys[0].Marshal(), b.client.PublicKey().Marshal()) {
		t.Error("entry lacks bob's client key")
	}
	if got.Expires.Before(time.Now().Add(30*time.Minute)) || got.Expires.After(time.Now().Add(41*time.Minute)) {
		t.Errorf("expiry %v, want about 40 min from now", got.Expires)
	}
	if name, ok := a.reg.AuthorizedKey(b.client.PublicKey()); !ok || name != "bob" {
		t.Errorf("alice's registry does not authorize bob's client key: %q %v", name, ok)
	}
	if e2, _ := b.reg.ByID(a.fp); e2.AuthorID != idA {
		t.Errorf("author %q, want %q", e2.AuthorID, idA)
	}
	if len(a.reg.List()) != 1 || len(b.reg.List()) != 1 {
		t.Errorf("a peer lists itself: %d %d", len(a.reg.List()), len(b.reg.List()))
	}

	// Clean exit deletes the advert; alice drops bob and his key.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := time.Now()
	if err := b.d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "alice to drop bob", func() bool { return !a.has(b.fp) })
	t.Logf("bob left alice's registry %v after Close began", time.Since(closed).Round(time.Millisecond))
	if _, ok := a.reg.AuthorizedKey(b.client.PublicKey()); ok {
		t.Error("bob's client key is still authorized after he left")
	}
	for _, m := range e.fake.Messages(e.channel) {
		if m.AuthorID == idB {
			t.Errorf("bob's message %s survived Close", m.ID)
		}
	}
}

func TestSharedToken(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.bot(t)
	a := e.start(t, tok, "alice")
	b := e.start(t, tok, "bob")
	c := e.start(t, tok, "carol")
	for _, n := range []*node{a, b, c} {
		waitFor(t, 10*time.Second, "everyone to see two peers", func() bool { return len(n.reg.List()) == 2 })
	}
	if got := names(a.reg); !slices.Equal(got, []string{"bob", "carol"}) {
		t.Errorf("alice sees %v", got)
	}
}

func TestRefreshAndAddressChange(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob", func(c *Config) {
		c.Refresh = 300 * time.Millisecond
		c.MinRepost = 100 * time.Millisecond
	})
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	// Several refreshes (post new, delete old): bob stays listed.
	waitFor(t, 20*time.Second, "bob to refresh twice", func() bool { return e.fake.Writes()[idB] >= 5 })
	if !a.has(b.fp) {
		t.Fatal("bob vanished during refreshes")
	}
	b.d.SetAddrs([]string{"198.51.100.7:4022"})
	waitFor(t, 10*time.Second, "new address at alice", func() bool {
		p, ok := a.reg.ByID(b.fp)
		return ok && slices.Equal(p.Addrs, []string{"198.51.100.7:4022"})
	})
	waitFor(t, 10*time.Second, "one advert of bob's", func() bool { return countBy(e, idB) == 1 })
}

func names(r *peers.Registry) []string {
	var out []string
	for _, e := range r.List() {
		out = append(out, e.DisplayName)
	}
	return out
}

func countBy(e *env, author string) int {
	n := 0
	for _, m := range e.fake.Messages(e.channel) {
		if m.AuthorID == author && strings.HasPrefix(m.Content, "dsftp/1 ") {
			n++
		}
	}
	return n
}

// TestRestartReplacesStaleAdvert: a run that crashed leaves its advert; a
// new run with the same host key and bot deletes it and takes over.
func TestRestartReplacesStaleAdvert(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	a := e.start(t, tokA, "alice")
	host := newSigner(t)
	withHost := func(addr string) func(*Config) {
		return func(c *Config) {
			c.Signer = host
			c.Addrs = []string{addr}
			c.Registry = peers.NewRegistry(ssh.FingerprintSHA256(host.PublicKey()))
		}
	}
	old := e.start(t, tokB, "bob", withHost("192.0.2.1:1"))
	waitFor(t, 10*time.Second, "alice to see the first bob", func() bool { return a.has(old.fp) })
	old.d.cancel() // crash: the run loop stops, the advert stays
	<-old.d.done
	// The new run's clock is ahead by more than the one-second grain of
	// issued-at, as the wall clock would be a moment later.
	e.start(t, tokB, "bob", withHost("192.0.2.2:2"), func(c *Config) { c.now = skewed(1100 * time.Millisecond) })
	waitFor(t, 10*time.Second, "the stale advert to be deleted", func() bool { return countBy(e, idB) == 1 })
	waitFor(t, 10*time.Second, "alice to see bob's new address", func() bool {
		p, ok := a.reg.ByID(old.fp)
		return ok && slices.Equal(p.Addrs, []string{"192.0.2.2:2"})
	})
	if got := names(a.reg); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("alice lists %v", got)
	}
}

// TestAdvertDeletedByModerator: when someone else deletes a live advert,
// its owner posts it again.
func TestAdvertDeletedByModerator(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob", func(c *Config) { c.MinRepost = 100 * time.Millisecond })
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	var msg string
	for _, m := range e.fake.Messages(e.channel) {
		if m.AuthorID == idB {
			msg = m.ID
		}
	}
	e.fake.Delete(e.channel, msg)
	waitFor(t, 10*time.Second, "bob to post again", func() bool {
		for _, m := range e.fake.Messages(e.channel) {
			if m.AuthorID == idB && m.ID != msg {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "alice to list bob again", func() bool { return a.has(b.fp) })
}
