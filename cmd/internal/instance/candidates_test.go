package instance

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/punch"
)

func addrPorts(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// The share's addresses split into public IPv6 candidates, the kernel's
// preferred source (a temporary address) first, and local ones (private
// IPv4, unique local IPv6, loopback); link-local IPv6 is left out. With no
// IPv6 route to the internet, there is no public IPv6 candidate. The
// adverts list STUN's public address, the public IPv6 ones, then the
// local ones, each once.
func TestOwnCandidates(t *testing.T) {
	// As reach.Local lists them for a wildcard listener on port 2200.
	addrs := addrPorts("192.168.1.5:2200", "[::ffff:10.0.0.5]:2200", "[2001:db8:1::5]:2200",
		"[2001:db8:1:0:a1b2:c3d4:e5f6:1]:2200", "[2001:db8:1:0:ffff:1:2:3]:2200", "[fd00:1::5]:2200",
		"[fe80::5]:2200", "127.0.0.1:2200", "[::1]:2200")
	temporary := netip.MustParseAddr("2001:db8:1:0:a1b2:c3d4:e5f6:1")
	global, local := ownCandidates(addrs, 2201, temporary)
	wantGlobal := addrPorts("[2001:db8:1:0:a1b2:c3d4:e5f6:1]:2201", "[2001:db8:1::5]:2201", "[2001:db8:1:0:ffff:1:2:3]:2201")
	wantLocal := addrPorts("192.168.1.5:2201", "10.0.0.5:2201", "[fd00:1::5]:2201", "127.0.0.1:2201", "[::1]:2201")
	if !slices.Equal(global, wantGlobal) {
		t.Errorf("public IPv6 candidates %v; want %v", global, wantGlobal)
	}
	if !slices.Equal(local, wantLocal) {
		t.Errorf("local candidates %v; want %v", local, wantLocal)
	}
	// Without an IPv6 route to the internet, global addresses are only
	// local candidates.
	if global, local := ownCandidates(addrs, 2201, netip.Addr{}); len(global) != 0 || len(local) != len(wantLocal)+len(wantGlobal) {
		t.Errorf("no IPv6 route: public IPv6 candidates %v, local %v", global, local)
	}

	u := udpCandidates{global: global, local: local, public: netip.MustParseAddrPort("198.51.100.7:40000")}
	want := []string{"198.51.100.7:40000", "[2001:db8:1:0:a1b2:c3d4:e5f6:1]:2201", "[2001:db8:1::5]:2201",
		"[2001:db8:1:0:ffff:1:2:3]:2201", "192.168.1.5:2201", "10.0.0.5:2201", "[fd00:1::5]:2201", "127.0.0.1:2201", "[::1]:2201"}
	if got := u.strings(); !slices.Equal(got, want) {
		t.Errorf("advertised %q; want %q", got, want)
	}
	// STUN over IPv6 sees the address itself (no NAT): listed once.
	u.public = global[0]
	if got := u.strings(); !slices.Equal(got, want[1:]) {
		t.Errorf("with STUN's answer over IPv6, advertised %q; want %q", got, want[1:])
	}
}

// Two members with public IPv6 addresses punch whatever STUN said of
// their IPv4 NATs (symmetric on both sides defeats IPv4 punching) and
// without STUN at all; without IPv6 on one side, the NATs decide.
func TestWantedIPv6(t *testing.T) {
	v6peer := peers.Peer{ID: "p", Unreachable: true, NAT: string(punch.NATSymmetric),
		UDP: []string{"198.51.100.9:2200", "[2001:db8:2::2]:2200"}}
	v4peer := v6peer
	v4peer.UDP = []string{"198.51.100.9:2200", "[fd00:2::2]:2200"}
	noSTUN := v6peer
	noSTUN.NAT, noSTUN.UDP = "", []string{"[2001:db8:2::2]:2200"}
	ours := addrPorts("[2001:db8:1::2]:2200")
	for _, c := range []struct {
		name   string
		global []netip.AddrPort
		nat    punch.NAT
		peer   peers.Peer
		want   bool
	}{
		{"both IPv6, symmetric IPv4 NATs", ours, punch.NATSymmetric, v6peer, true},
		{"both IPv6, no STUN", ours, "", noSTUN, true},
		{"only the peer has IPv6", nil, punch.NATSymmetric, v6peer, false},
		{"only we have IPv6 (the peer's is unique local)", ours, punch.NATSymmetric, v4peer, false},
		{"only we have IPv6, cone NATs", ours, punch.NATCone, func() peers.Peer { p := v4peer; p.NAT = "cone"; return p }(), true},
	} {
		in := &Instance{}
		in.udp.Store(&udpCandidates{global: c.global, nat: c.nat})
		if got := in.punchWanted(c.peer); got != c.want {
			t.Errorf("%s: wanted %v; want %v", c.name, got, c.want)
		}
	}
}
