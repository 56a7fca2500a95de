package lan

import (
	"net"
	"slices"
	"testing"
)

func TestWithSource(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		from  *net.UDPAddr
		want  []string
	}{
		{[]string{"10.0.0.1:2200"}, &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 21029}, []string{"10.0.0.1:2200"}},
		{[]string{"10.0.0.1:2200"}, &net.UDPAddr{IP: net.ParseIP("10.0.0.9"), Port: 21029}, []string{"10.0.0.1:2200", "10.0.0.9:2200"}},
		{[]string{"[2001:db8::1]:2200"}, &net.UDPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth3"}, []string{"[2001:db8::1]:2200", "[fe80::1%eth3]:2200"}},
		{[]string{"[2001:db8::1]:2200"}, &net.UDPAddr{IP: net.ParseIP("fe80::1")}, []string{"[2001:db8::1]:2200"}},
		{[]string{"[2001:db8::1]:2200"}, &net.UDPAddr{IP: net.ParseIP("::ffff:10.0.0.2")}, []string{"[2001:db8::1]:2200", "10.0.0.2:2200"}},
		{nil, &net.UDPAddr{IP: net.ParseIP("10.0.0.9")}, nil},
	} {
		if got := withSource(tc.addrs, tc.from); !slices.Equal(got, tc.want) {
			t.Errorf("withSource(%v, %v) = %v, want %v", tc.addrs, tc.from, got, tc.want)
		}
	}
}
