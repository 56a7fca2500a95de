//go:build linux

package lan_test

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// A listen-only discovery hears the announcers and never sends: its codec
// never signs, nothing leaves its sockets, and the announcers never learn
// of it, not even when it stops (no leaving advert).
func TestListenOnly(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	// The listener starts first: with an interval of a minute it hears
	// the others' announcements on start.
	l := startNode(t, "eve", port, func(o *lan.Options) { o.ListenOnly = true })
	a := startNode(t, "alice", port, nil)
	b := startNode(t, "bob", port, nil)
	waitNames(t, l.reg, "alice", "bob")
	waitNames(t, a.reg, "bob")
	waitNames(t, b.reg, "alice")
	// Run has returned: its counts are final, and with nothing sent there
	// is no leaving advert still on its way to the others.
	l.stop()
	if s := l.d.Stats(); s.Sent != 0 || s.Accepted < 2 {
		t.Errorf("listener stats %+v: want nothing sent and both heard", s)
	}
	l.codec.mu.Lock()
	seq := l.codec.seq
	l.codec.mu.Unlock()
	if seq != 0 {
		t.Errorf("the listener signed %d adverts; it must sign none", seq)
	}
	if got := names(a.reg); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("alice lists %v: the listener must stay unknown", got)
	}
	if got := names(b.reg); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("bob lists %v: the listener must stay unknown", got)
	}
}

// The verify-only codec checks real adverts and refuses to sign.
func TestVerifyCodec(t *testing.T) {
	host := testenv.NewSigner(t)
	c := lan.NewAdvertCodec(host, "alice", "dsftp", nil)
	c.SetAddrs([]string{"127.0.0.1:2200"})
	msg, err := c.Encode(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := lan.NewVerifyCodec()
	adv, err := v.Verify(msg)
	if err != nil {
		t.Fatalf("verify a real advert: %v", err)
	}
	if adv.Peer.Name != "alice" || adv.Peer.ID != ssh.FingerprintSHA256(host.PublicKey()) {
		t.Errorf("verified %+v", adv.Peer)
	}
	if _, err := v.Encode(time.Minute); err == nil {
		t.Error("the verify-only codec signed an advert")
	}
}
