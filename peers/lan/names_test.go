//go:build linux

package lan_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// TestNameClaimDuringRestart: alice (one host key across runs) leaves; a
// stranger announces "alice" while she is away; alice's next run gets
// "alice" back, and the stranger a suffixed name. A run that restarts
// without leaving replaces its stale advert at once. Real adverts over
// real sockets on loopback; the receiver remembers names in a file.
func TestNameClaimDuringRestart(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	rx := startNode(t, "rx", port, func(o *lan.Options) { o.ListenOnly = true; o.Codec = lan.NewVerifyCodec() })
	book, err := peers.OpenNameBook(filepath.Join(t.TempDir(), "known_names"))
	if err != nil {
		t.Fatal(err)
	}
	rx.reg.SetNameBook(book, func(err error) { t.Error(err) })

	aliceKey := testenv.NewSigner(t)
	aliceID := ssh.FingerprintSHA256(aliceKey.PublicKey())
	run := func(signer ssh.Signer, addr string) *lan.AdvertCodec {
		c := lan.NewAdvertCodec(signer, "alice", "dsftp", nil)
		c.SetAddrs([]string{addr})
		return c
	}
	announce := func(c *lan.AdvertCodec, ttl time.Duration, cond func() bool) {
		t.Helper()
		msg, err := c.Encode(ttl)
		if err != nil {
			t.Fatal(err)
		}
		sendUntil(t, "127.0.0.1", port, msg, cond)
	}
	nameOf := func(id string) string {
		e, _ := rx.reg.ByID(id)
		return e.DisplayName
	}

	// alice's first run, then a restart without a leaving advert: the new
	// run's advert replaces the old one at once, name kept.
	first := run(aliceKey, "127.0.0.1:2201")
	announce(first, time.Minute, func() bool { return nameOf(aliceID) == "alice" })
	second := run(aliceKey, "127.0.0.1:2202")
	announce(second, time.Minute, func() bool {
		e, _ := rx.reg.ByID(aliceID)
		return slices.Contains(e.Addrs, "127.0.0.1:2202")
	})
	if e, _ := rx.reg.ByID(aliceID); e.DisplayName != "alice" || slices.Contains(e.Addrs, "127.0.0.1:2201") {
		t.Errorf("after the restart alice is %q at %v", e.DisplayName, e.Addrs)
	}

	// alice leaves (a last advert that expires in 2 s).
	announce(second, lan.LeaveTTL, func() bool {
		e, ok := rx.reg.ByID(aliceID)
		return !ok || e.Expires.Before(time.Now().Add(10*time.Second))
	})
	testenv.WaitFor(t, 10*time.Second, "alice to leave", func() bool { _, ok := rx.reg.ByID(aliceID); return !ok })

	// A stranger claims her name meanwhile.
	strangerKey := testenv.NewSigner(t)
	strangerID := ssh.FingerprintSHA256(strangerKey.PublicKey())
	announce(run(strangerKey, "127.0.0.1:2666"), time.Minute, func() bool { return nameOf(strangerID) != "" })

	// alice's next run: the same key, the same name.
	announce(run(aliceKey, "127.0.0.1:2203"), time.Minute, func() bool { return nameOf(aliceID) != "" })
	if got := nameOf(aliceID); got != "alice" {
		t.Errorf("the real alice came back as %q, want alice", got)
	}
	if got := nameOf(strangerID); got == "alice" || got == "" {
		t.Errorf("the stranger is listed as %q", got)
	}
	t.Logf("names: %v", names(rx.reg))
}
