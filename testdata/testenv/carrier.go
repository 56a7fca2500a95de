//go:build linux

package testenv

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Carrier-grade NAT (RFC 6598): a home whose router's WAN address lies in
// 100.64.0.0/10 sits behind the provider's NAT, which the internet
// namespace plays. Traffic from such a router to anywhere else leaves
// behind one carrier public address (CarrierPublic), as on a real CGNAT,
// and nothing outside can open a connection in: a mapping on the home
// router forwards a port that no one can reach.

// CarrierPublic is the address the carrier's NAT puts on the traffic of its
// customers (the internet namespace holds it, in PublicWAN).
const CarrierPublic = "198.20.113.200"

// carrierSpace is the RFC 6598 shared address space.
var carrierSpace = netip.MustParsePrefix("100.64.0.0/10")

// carrierNFT masquerades 100.64.0.0/10 behind CarrierPublic (forwarded
// traffic in postrouting, traffic to the internet namespace's own
// addresses, such as the fake Discord, in input) and drops connections
// that anyone outside the shared space starts towards it, or towards the
// carrier's public address (a real CGNAT answers nothing there, so a dial
// times out rather than being refused).
const carrierNFT = `table ip carrier {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr 100.64.0.0/10 ip saddr != 100.64.0.0/10 ct state new counter drop
	}
	chain output {
		type filter hook output priority 0; policy accept;
		ip daddr 100.64.0.0/10 ct state new counter drop
	}
	chain inbound {
		type filter hook input priority 0; policy accept;
		ip daddr ` + CarrierPublic + ` ct state new counter drop
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		ip saddr 100.64.0.0/10 ip daddr != 100.64.0.0/10 snat to ` + CarrierPublic + `
	}
	chain input {
		type nat hook input priority 100; policy accept;
		ip saddr 100.64.0.0/10 ip daddr != 100.64.0.0/10 snat to ` + CarrierPublic + `
	}
}
`

// addCarrierNAT turns the internet namespace into the carrier's NAT for
// the shared address space, once. The caller holds in.mu.
func (in *Internet) addCarrierNAT(t testing.TB) {
	t.Helper()
	if in.carrier {
		return
	}
	MustRun(t, "ip", "-n", in.NS, "addr", "add", CarrierPublic+"/"+strings.Split(PublicWAN, "/")[1], "dev", "inet")
	// Forwarding a router's packet back out of the bridge it came from
	// would otherwise send ICMP redirects to hosts that cannot use them.
	MustRunIn(t, in.NS, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.inet.send_redirects=0")
	f := filepath.Join(t.TempDir(), "carrier.nft")
	if err := os.WriteFile(f, []byte(carrierNFT), 0o644); err != nil {
		t.Fatal(err)
	}
	MustRunIn(t, in.NS, "nft", "-f", f)
	in.carrier = true
}

// CarrierDrops returns how many packets opening a connection from outside
// the carrier's NAT dropped: towards the shared address space (forwarded
// or from the internet namespace itself) or towards CarrierPublic.
func (in *Internet) CarrierDrops(t testing.TB) int {
	t.Helper()
	n := 0
	for _, chain := range []string{"forward", "output", "inbound"} {
		out := MustRunIn(t, in.NS, "nft", "list", "chain", "ip", "carrier", chain)
		n += counterPackets(out)
	}
	return n
}

// counterPackets sums the "counter packets N" of an nft listing.
func counterPackets(listing string) int {
	n := 0
	f := strings.Fields(listing)
	for i := 0; i+2 < len(f); i++ {
		if f[i] == "counter" && f[i+1] == "packets" {
			v, _ := strconv.Atoi(f[i+2])
			n += v
		}
	}
	return n
}
