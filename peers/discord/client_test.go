//go:build linux

package discord

import (
	"context"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
)

// TestClientOnly: an instance that shares nothing posts a client-only
// advert. A share lets its key in exactly like a peer's, but does not list
// it; dsftp peers (List) marks it as a client; when it closes, the advert
// is deleted and the key stops working.
func TestClientOnly(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokG, _ := e.bot(t)
	a := e.start(t, tokA, "alice")
	// The client asks for alice's name too: it must not get it.
	g := e.start(t, tokG, "alice", func(c *Config) {
		c.ClientOnly = true
		c.Addrs = []string{"127.0.0.1:9"} // ignored: a client has nothing to reach
	})
	waitFor(t, 10*time.Second, "the client to see alice", func() bool { return g.has(a.fp) })
	waitFor(t, 10*time.Second, "alice to accept the client's key", func() bool {
		_, ok := a.reg.AuthorizedKey(g.client.PublicKey())
		return ok
	})
	if who, _ := a.reg.AuthorizedKey(g.client.PublicKey()); who != "alice (client)" {
		t.Errorf("alice's share sees the client as %q, want \"alice (client)\"", who)
	}
	if l := a.reg.List(); len(l) != 0 {
		t.Fatalf("alice lists %+v; a client-only advert must not be a peer", l)
	}
	if cl := a.reg.Clients(); len(cl) != 1 || cl[0].ID != g.fp {
		t.Fatalf("alice's clients: %+v", cl)
	}
	// The client's advert in the channel: flagged, no addresses.
	var found bool
	for _, m := range e.fake.Messages(e.channel) {
		d, err := advert.Decode(m.Content)
		if err != nil || d.Fingerprint != g.fp {
			continue
		}
		found = true
		if !d.Client || len(d.Addrs) != 0 || len(d.ClientKeys) != 1 {
			t.Errorf("client advert: client=%v addrs=%v keys=%d", d.Client, d.Addrs, len(d.ClientKeys))
		}
	}
	if !found {
		t.Fatal("no advert of the client in the channel")
	}
	// SSH: alice's share takes the client's key.
	addr := sshServer(t, a.host, a.reg.AuthorizedKey)
	alice, _ := g.reg.ByID(a.fp)
	if err := dial(addr, g.client, alice.HostKey); err != nil {
		t.Fatalf("the client cannot log in to alice: %v", err)
	}
	// dsftp peers: alice is a peer, the client is marked as one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, _, _ := e.config(t, tokA, "lister")
	infos, err := List(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("List = %+v, want alice and the client", infos)
	}
	for _, in := range infos {
		if (in.ID == g.fp) != in.Client {
			t.Errorf("List entry %s (%s): client=%v", in.DisplayName, in.ID, in.Client)
		}
	}
	// Leaving deletes the advert; the key is refused from then on.
	g.d.Close(ctx)
	waitFor(t, 10*time.Second, "alice to drop the client's key", func() bool {
		_, ok := a.reg.AuthorizedKey(g.client.PublicKey())
		return !ok
	})
	for _, m := range e.fake.Messages(e.channel) {
		if fp, err := advertDecode(m.Content); err == nil && fp == g.fp {
			t.Errorf("the client's advert %s is still in the channel after Close", m.ID)
		}
	}
	if err := dial(addr, g.client, alice.HostKey); err == nil {
		t.Error("alice's share still accepts the client's key after its advert was deleted")
	}
}
