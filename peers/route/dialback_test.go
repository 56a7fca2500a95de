package route

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestDialBackNonces: a nonce counts once, only while its check runs,
// and only if we issued it; the table is bounded.
func TestDialBackNonces(t *testing.T) {
	var tab nonceTable
	now := time.Now()
	ns, err := tab.issue(2, now)
	if err != nil {
		t.Fatal(err)
	}
	if tab.arrive("not-ours", now) {
		t.Error("a nonce we never issued was taken")
	}
	if !tab.arrive(ns[0], now) || tab.arrive(ns[0], now) {
		t.Error("a nonce of ours did not count exactly once")
	}
	if got := tab.take(ns); !got[0] || got[1] {
		t.Errorf("take = %v, want [true false]", got)
	}
	if tab.arrive(ns[1], now) {
		t.Error("a nonce arrived after its check ended")
	}
	late, _ := tab.issue(1, now)
	if tab.arrive(late[0], now.Add(nonceLife+time.Second)) {
		t.Error("an expired nonce was taken")
	}
	if _, err := tab.issue(maxNonces, now); err == nil {
		t.Errorf("%d nonces outstanding at once", maxNonces+1)
	}
	if _, err := tab.issue(maxNonces, now.Add(nonceLife+time.Second)); err != nil {
		t.Errorf("expired nonces were not forgotten to make room: %v", err)
	}
}

// TestDialBackLimitsTable: one check per member every 10 s, one dial per
// address a minute whoever asks and however it is spelled, and a full
// table refuses.
func TestDialBackLimitsTable(t *testing.T) {
	ctx := context.Background()
	var l dialBackLimits
	now := time.Now()
	targets := resolveDistinct(ctx, []string{"127.0.0.1:2200", "[::ffff:127.0.0.1]:2200", "127.0.0.1:2200", "0.0.0.0:22"}, nil)
	if len(targets) != 1 || targets[0].to != netip.MustParseAddrPort("127.0.0.1:2200") {
		t.Fatalf("distinct targets = %+v, want 127.0.0.1:2200 once (and no unspecified address)", targets)
	}
	a := []netip.AddrPort{targets[0].to}
	b := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:2201")}
	if err := l.take("m1", a, now); err != nil {
		t.Fatal(err)
	}
	if err := l.take("m1", b, now.Add(5*time.Second)); err == nil {
		t.Error("a member had a second check within 10 s")
	}
	if err := l.take("m2", a, now.Add(30*time.Second)); err == nil {
		t.Error("another member had the same address dialed within a minute")
	}
	if err := l.take("m1", b, now.Add(11*time.Second)); err != nil {
		t.Errorf("a member's check 11 s later, of another address: %v", err)
	}
	if err := l.take("m2", a, now.Add(61*time.Second)); err != nil {
		t.Errorf("the address a minute later: %v", err)
	}
	var full dialBackLimits
	for i := range dialBackTableMax {
		p := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 22)
		if err := full.take(string(rune('a'+i%26))+p.String(), []netip.AddrPort{p}, now); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if err := full.take("one more", b, now); err == nil {
		t.Errorf("a check beyond %d addresses in a minute was done", dialBackTableMax)
	}
}
