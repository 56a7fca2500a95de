package peers

import (
	"net/netip"
	"testing"
)

func TestPublicIPv6(t *testing.T) {
	for s, want := range map[string]bool{
		"2001:db8::1":         true, // documentation, but global unicast: the lab's prefix
		"2a01:4f8:1:2::3":     true,
		"2001:db8::1%eth0":    false, // a zone is only meaningful on this host
		"fe80::1":             false, // link-local
		"fd12:3456::1":        false, // unique local
		"fc00::1":             false,
		"fec0::1":             false, // site-local
		"::1":                 false,
		"::":                  false,
		"ff02::1":             false,
		"::ffff:198.51.100.1": false,
		"::198.51.100.1":      false,
		"64:ff9b::c633:6401":  false,
		"100::1":              false,
		"198.51.100.1":        false, // IPv4
		"192.168.1.2":         false,
	} {
		if got := PublicIPv6(netip.MustParseAddr(s)); got != want {
			t.Errorf("PublicIPv6(%s) = %v; want %v", s, got, want)
		}
	}
}

func TestHasPublicIPv6(t *testing.T) {
	for _, c := range []struct {
		udp  []string
		want bool
	}{
		{nil, false},
		{[]string{"198.51.100.1:2200", "192.168.1.2:2200"}, false},
		{[]string{"198.51.100.1:2200", "[fd00::2]:2200", "[fe80::1%eth0]:2200"}, false},
		{[]string{"198.51.100.1:2200", "[2001:db8:1::2]:2200"}, true},
		{[]string{"2001:db8:1::2:2200"}, false}, // not bracketed: not a candidate
	} {
		if got := HasPublicIPv6(c.udp); got != c.want {
			t.Errorf("HasPublicIPv6(%q) = %v; want %v", c.udp, got, c.want)
		}
	}
}
