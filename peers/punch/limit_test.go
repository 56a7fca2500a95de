package punch

import (
	"net/netip"
	"testing"
)

// Strangers get at most their share of the slots; a member's source still
// gets in beyond it, within its own per-source limit.
func TestLimiterStrangers(t *testing.T) {
	member := netip.MustParseAddr("192.0.2.1")
	l := newLimiter(Config{Member: func(src netip.Addr) bool { return src == member }}.withDefaults())
	for i := range 32 {
		if _, err := l.admit(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); err != nil {
			t.Fatalf("stranger %d: %v", i, err)
		}
	}
	if _, err := l.admit(netip.MustParseAddr("198.51.100.200")); err == nil {
		t.Fatal("a 33rd stranger was admitted; want at most 32")
	}
	for i := range 4 {
		if _, err := l.admit(member); err != nil {
			t.Fatalf("member's handshake %d beyond the strangers' share: %v", i, err)
		}
	}
	if _, err := l.admit(member); err == nil {
		t.Fatal("a member's 5th handshake at once was admitted; want at most 4 per source")
	}
	if st := l.stats(); st.Handshakes != 36 || st.Refused != 2 {
		t.Fatalf("stats %+v; want 36 handshakes, 2 refused", st)
	}
}

// Without Member every source counts as a member: all 64 slots are open.
func TestLimiterNoMembers(t *testing.T) {
	l := newLimiter(Config{}.withDefaults())
	for i := range 64 {
		if _, err := l.admit(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
}

// An IPv6 source is its /64: addresses in one prefix share its limits.
func TestLimiterIPv6Prefix(t *testing.T) {
	l := newLimiter(Config{}.withDefaults())
	for i := range 4 {
		if _, err := l.admit(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})); err != nil {
			t.Fatalf("address %d of the /64: %v", i, err)
		}
	}
	if _, err := l.admit(netip.MustParseAddr("2001:db8::ff:1")); err == nil {
		t.Fatal("a 5th handshake from one /64 was admitted; want at most 4")
	}
	s, err := l.admit(netip.MustParseAddr("2001:db8:0:1::1"))
	if err != nil {
		t.Fatalf("another /64: %v", err)
	}
	s.release()
	if st := l.stats(); st.Handshakes != 4 || st.Conns != 4 {
		t.Fatalf("stats %+v after a release; want 4 and 4", st)
	}
}

// A source that Refuse names is refused before it takes a slot, member
// or not; others are not.
func TestLimiterRefuse(t *testing.T) {
	bad := netip.MustParseAddr("198.51.100.7")
	l := newLimiter(Config{Refuse: func(src netip.Addr) bool { return src == bad }}.withDefaults())
	if _, err := l.admit(bad); err == nil {
		t.Fatal("a refused source was admitted")
	}
	if _, err := l.admit(netip.MustParseAddr("198.51.100.8")); err != nil {
		t.Fatalf("another source: %v", err)
	}
	if st := l.stats(); st.Handshakes != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v; want 1 handshake, 1 refused", st)
	}
}
