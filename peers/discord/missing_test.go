//go:build linux

package discord

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/testdata/discordfake"
)

// advertsBy returns the adverts in the channel posted by author.
func advertsBy(e *env, author string) []*advert.Decoded {
	var out []*advert.Decoded
	for _, m := range e.fake.Messages(e.channel) {
		if d, err := advert.Decode(m.Content); err == nil && m.AuthorID == author {
			out = append(out, d)
		}
	}
	return out
}

// TestFailedStoreKeepsMember: the server announces bob's new advert over
// the gateway, then fails to store it (HTTP 500). Alice takes the event;
// her next history read lacks that advert, but bob stays listed (his
// previous advert is still there), and bob posts it again within seconds,
// so the channel ends with one advert of his, the re-posted one.
func TestFailedStoreKeepsMember(t *testing.T) {
	var bobID atomic.Pointer[string]
	var failures, failed atomic.Int32
	e := newEnv(t, func(f *discordfake.Server) {
		f.FailStore = func(r discordfake.Request) int {
			if id := bobID.Load(); id != nil && r.BotID == *id && failures.Add(-1) >= 0 {
				failed.Add(1)
				return 500
			}
			return 0
		}
	})
	tokA, _ := e.bot(t)
	tokB, idB := e.bot(t)
	bobID.Store(&idB)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob", func(c *Config) { c.MinRepost = 100 * time.Millisecond })
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	first := advertsBy(e, idB)
	if len(first) != 1 {
		t.Fatalf("%d adverts of bob at start", len(first))
	}

	var dropped atomic.Int32
	ch, stop := a.reg.Watch()
	defer stop()
	go func() {
		for range ch {
			if !a.has(b.fp) {
				dropped.Add(1)
			}
		}
	}()

	failures.Store(1)
	moved := []string{"192.0.2.7:7"}
	b.d.SetAddrs(moved)
	waitFor(t, 10*time.Second, "alice to take the announced advert", func() bool {
		p, ok := a.reg.ByID(b.fp)
		return ok && slices.Equal(p.Addrs, moved) && failed.Load() == 1
	})
	// Alice reads history now: the announced advert is not there.
	if err := a.d.recv.catchUp(context.Background(), a.d.s); err != nil {
		t.Fatal(err)
	}
	if !a.has(b.fp) {
		t.Fatal("alice dropped bob after one history read lacked his announced advert")
	}
	waitFor(t, 15*time.Second, "bob's re-posted advert to replace his previous one", func() bool {
		ads := advertsBy(e, idB)
		return len(ads) == 1 && slices.Equal(ads[0].Addrs, moved)
	})
	ads := advertsBy(e, idB)
	t.Logf("bob's adverts in the channel: %d (seq %d, the first was %d); posts failed: %d", len(ads), ads[0].Seq, first[0].Seq, failed.Load())
	if ads[0].Seq != first[0].Seq+2 {
		t.Errorf("stored advert has seq %d, want %d (the one after the failed one)", ads[0].Seq, first[0].Seq+2)
	}
	if err := a.d.recv.catchUp(context.Background(), a.d.s); err != nil {
		t.Fatal(err)
	}
	if n := dropped.Load(); n != 0 || !a.has(b.fp) {
		t.Errorf("alice dropped bob %d times", n)
	}
}

// TestMissingAdvertNeedsSecondRead: an advert gone from history whose
// deletion event was lost leaves on the second history read, not the
// first; a deleted one (event) leaves at once.
func TestMissingAdvertNeedsSecondRead(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	other, _ := e.bot(t)
	var skew atomic.Int64 // alice's clock ahead of the wall clock
	a := e.start(t, tokA, "alice", func(c *Config) {
		c.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	dave, erin := newSigner(t), newSigner(t)
	daveMsg := e.post(t, other, e.craft(t, dave, "dave"))
	erinMsg := e.post(t, other, e.craft(t, erin, "erin"))
	fpD, fpE := ssh.FingerprintSHA256(dave.PublicKey()), ssh.FingerprintSHA256(erin.PublicKey())
	waitFor(t, 10*time.Second, "alice to see dave and erin", func() bool { return a.has(fpD) && a.has(fpE) })

	skew.Store(int64(1100 * time.Millisecond)) // the adverts are older than the next read by more than its slack
	e.fake.Forget(e.channel, daveMsg)
	if err := a.d.recv.catchUp(context.Background(), a.d.s); err != nil {
		t.Fatal(err)
	}
	if !a.has(fpD) {
		t.Error("dave dropped on the first history read that lacked him")
	}
	if err := a.d.recv.catchUp(context.Background(), a.d.s); err != nil {
		t.Fatal(err)
	}
	if a.has(fpD) {
		t.Error("dave still listed after a second history read lacked him")
	}

	e.fake.Delete(e.channel, erinMsg)
	waitFor(t, 5*time.Second, "erin to leave on her deletion event", func() bool { return !a.has(fpE) })
}

// TestRestartDeletesExpiredOwnAdvert: an advert of an earlier run that
// has expired (the run was killed long ago) is deleted by the next run
// with the same host key and bot, like a valid one.
func TestRestartDeletesExpiredOwnAdvert(t *testing.T) {
	e := newEnv(t)
	tokB, idB := e.bot(t)
	host := newSigner(t)
	old := e.craft(t, host, "bob", func(a *advert.Advert) {
		a.Issued, a.Expires = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	})
	oldID := e.post(t, tokB, old)
	e.start(t, tokB, "bob", func(c *Config) {
		c.Signer = host
		c.Registry = peers.NewRegistry(ssh.FingerprintSHA256(host.PublicKey()))
	})
	waitFor(t, 10*time.Second, "the expired advert to be deleted", func() bool {
		return !slices.ContainsFunc(e.fake.Messages(e.channel), func(m discordfake.Message) bool { return m.ID == oldID })
	})
	if n := countBy(e, idB); n != 1 {
		t.Errorf("%d adverts of bob, want 1", n)
	}
}
