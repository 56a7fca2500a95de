package peers

import "net/netip"

// Prefixes that are global unicast by the letter of RFC 4291 but name no
// host that members elsewhere can send to.
var notPublicIPv6 = []netip.Prefix{
	netip.MustParsePrefix("fc00::/7"),      // unique local (RFC 4193): one site only
	netip.MustParsePrefix("fec0::/10"),     // site-local, deprecated (RFC 3879)
	netip.MustParsePrefix("::ffff:0:0/96"), // IPv4-mapped: IPv4 in disguise
	netip.MustParsePrefix("::/96"),         // IPv4-compatible, deprecated
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64 (RFC 6052): a translator's, not a host's
	netip.MustParsePrefix("100::/64"),      // discard-only (RFC 6666)
}

// PublicIPv6 reports whether a is an IPv6 address that a member anywhere
// on the internet can send to without NAT: global unicast, and not unique
// local, site-local, IPv4-mapped, NAT64 or discard-only. Link-local,
// loopback and multicast addresses are not global unicast. Such an address
// may still sit behind a stateful firewall, which a punch opens.
func PublicIPv6(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() || a.Zone() != "" || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range notPublicIPv6 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// HasPublicIPv6 reports whether one of the UDP candidates (literal
// "[ip]:port") is at a PublicIPv6 address: then a member with one too can
// punch to it whatever either NAT does to IPv4.
func HasPublicIPv6(udp []string) bool {
	for _, s := range udp {
		if ap, err := netip.ParseAddrPort(s); err == nil && PublicIPv6(ap.Addr()) {
			return true
		}
	}
	return false
}
