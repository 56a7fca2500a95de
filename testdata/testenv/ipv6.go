//go:build linux

package testenv

import (
	"fmt"
	"net/netip"
	"testing"
)

// IPv6 on the simulated internet: the internet namespace holds
// InternetIPv6 on its bridge and routes each IPv6 home's /64 to that
// home's router, which forwards it to its LAN without NAT. Its nftables
// forward chain (the same "table inet filter" as for IPv4, policy drop)
// lets in only what answers a flow from inside (ct state
// established,related), as real home routers do: a stateful IPv6
// firewall. HomeOptions.OpenIPv6 lets new connections in too.
//
//	internet ns: bridge "inet" 2001:db8::254/64
//	router n:    wan0 2001:db8::n/64, bridge "lan" 2001:db8:n::1/64
//	hosts:       eth0 2001:db8:n::2/64, ::3, … (default via 2001:db8:n::1)
//
// (n in hex.) Addresses are added without duplicate address detection,
// so they are usable at once. The prefixes are the documentation range
// (RFC 3849): global unicast, so dsftp takes them for public addresses.

// InternetIPv6 is the internet namespace's IPv6 prefix; each router's
// WAN gets an address in it.
const InternetIPv6 = "2001:db8::/64"

// internetAddr6 is the internet namespace's IPv6 address (Internet.Addr6).
var internetAddr6 = netip.MustParseAddr("2001:db8::254")

// addIPv6 gives the internet namespace its IPv6 address and forwarding.
func (in *Internet) addIPv6(t testing.TB) {
	t.Helper()
	in.Addr6 = internetAddr6
	MustRun(t, "ip", "-n", in.NS, "addr", "add", netip.PrefixFrom(in.Addr6, 64).String(), "dev", "inet", "nodad")
	MustRunIn(t, in.NS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
}

// addIPv6 gives home number n its WAN address in InternetIPv6 and the LAN
// prefix 2001:db8:n::/64, routed to it by the internet namespace.
func (h *Home) addIPv6(t testing.TB, n int) {
	t.Helper()
	in, r := h.Internet, h.Router
	wan6 := netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", n))
	h.LAN6 = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/64", n))
	h.RouterLAN6 = h.LAN6.Addr().Next()
	h.wan6 = wan6
	MustRun(t, "ip", "-n", r, "addr", "add", netip.PrefixFrom(wan6, 64).String(), "dev", "wan0", "nodad")
	MustRun(t, "ip", "-n", r, "-6", "route", "add", "default", "via", in.Addr6.String())
	MustRun(t, "ip", "-n", r, "addr", "add", netip.PrefixFrom(h.RouterLAN6, 64).String(), "dev", "lan", "nodad")
	MustRunIn(t, r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	MustRun(t, "ip", "-n", in.NS, "-6", "route", "add", h.LAN6.String(), "via", wan6.String())
}

// WAN6 returns the router's IPv6 WAN address (invalid without IPv6).
func (h *Home) WAN6() netip.Addr { return h.wan6 }

// addHostIPv6 gives a LAN host its IPv6 address, the hosts-th of the
// home's prefix after the router's, and a default route through the
// router.
func (h *Home) addHostIPv6(t testing.TB, host *Host, hosts int) {
	t.Helper()
	a := h.RouterLAN6
	for range hosts {
		a = a.Next()
	}
	host.Addr6 = a
	MustRun(t, "ip", "-n", host.NS, "addr", "add", netip.PrefixFrom(a, 64).String(), "dev", "eth0", "nodad")
	MustRun(t, "ip", "-n", host.NS, "-6", "route", "add", "default", "via", h.RouterLAN6.String())
}

// openIPv6NFT lets new IPv6 connections from the internet into the LAN:
// a router whose firewall the user opened.
const openIPv6NFT = `iifname "wan0" oifname "lan" meta nfproto ipv6 accept`

// neighborNFT lets in IPv6 neighbor discovery, without which nobody on
// the WAN finds the router's address (link-local, never forwarded).
const neighborNFT = `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`
