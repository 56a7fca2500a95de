package instance

import (
	"net/netip"
	"testing"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/punch"
)

// A source is a member's when one of a live member's UDP candidates is
// there: its IPv4 address, or anywhere in the /64 of an IPv6 one.
func TestUDPMember(t *testing.T) {
	in := &Instance{Registry: peers.NewRegistry("self")}
	in.Registry.Upsert(peers.Peer{ID: "SHA256:bob", Name: "bob",
		UDP: []string{"203.0.113.5:2200", "[2001:db8:1:2::10]:2200", "192.168.1.5:2200"}})
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"203.0.113.5", true},
		{"203.0.113.6", false},
		{"192.168.1.5", true},
		{"2001:db8:1:2::10", true},
		{"2001:db8:1:2:abcd::1", true}, // a temporary address in the same /64
		{"2001:db8:1:3::10", false},
	} {
		if got := in.udpMember(punch.Source(netip.MustParseAddr(c.ip))); got != c.want {
			t.Errorf("udpMember(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}
