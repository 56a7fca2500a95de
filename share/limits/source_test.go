package limits

import (
	"net"
	"testing"
)

// TestSourceOf: an IPv4 address (also written as IPv4-mapped IPv6) is
// one source, an IPv6 /64 another whatever the zone; a UDP address (a
// QUIC stream's) counts as its IP does; other addresses are unknown.
func TestSourceOf(t *testing.T) {
	tcp := func(ip, zone string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Zone: zone, Port: 2200} }
	for _, c := range []struct {
		a    net.Addr
		want string
	}{
		{tcp("192.0.2.7", ""), "192.0.2.7"},
		{tcp("::ffff:192.0.2.7", ""), "192.0.2.7"},
		{tcp("2001:db8:1:2:3:4:5:6", ""), "2001:db8:1:2::/64"},
		{tcp("fe80::1", "eth0"), "fe80::/64"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.7")}, "192.0.2.7"},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, "unknown"},
		{nil, "unknown"},
	} {
		if got := SourceOf(c.a).String(); got != c.want {
			t.Errorf("SourceOf(%v) = %s; want %s", c.a, got, c.want)
		}
	}
	if SourceOf(tcp("192.0.2.7", "")) != SourceOf(tcp("::ffff:192.0.2.7", "")) {
		t.Error("an IPv4 address and its mapped form are different sources")
	}
	if SourceOf(tcp("2001:db8::1", "")) != SourceOf(tcp("2001:db8::ffff:2", "")) {
		t.Error("two addresses of one /64 are different sources")
	}
	if SourceOf(tcp("2001:db8::1", "")) == SourceOf(tcp("2001:db8:0:1::1", "")) {
		t.Error("two /64s are one source")
	}
}

// TestMemberSource: a stream counts against the member it is for as
// introduced by its holder, apart from the holder's own and from the
// same member through another holder.
func TestMemberSource(t *testing.T) {
	own, forK := MemberSource("SHA256:h", ""), MemberSource("SHA256:h", "SHA256:k")
	if own.String() != "member SHA256:h" || forK.String() != "member SHA256:k via SHA256:h" {
		t.Errorf("strings: %q, %q", own, forK)
	}
	if own == forK || forK == MemberSource("SHA256:other", "SHA256:k") {
		t.Error("member sources that should differ are equal")
	}
	if !own.valid() || (Source{}).valid() {
		t.Error("validity")
	}
}

// A stream whose connection came over UDP (a QUIC stream, ServeStream
// with no holder) counts against its source address like a TCP
// connection from there, not against one shared "unknown" source.
func TestSourceOfUDP(t *testing.T) {
	udp := SourceOf(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4242})
	tcp := SourceOf(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 2200})
	other := SourceOf(&net.UDPAddr{IP: net.IPv4(192, 0, 2, 8), Port: 4242})
	if udp != tcp {
		t.Errorf("UDP source %v, TCP source %v of one address; want the same", udp, tcp)
	}
	if udp == other || udp == (Source{}) {
		t.Errorf("UDP sources %v and %v of two addresses; want distinct, set sources", udp, other)
	}
}
