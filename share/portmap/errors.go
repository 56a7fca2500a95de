package portmap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/huin/goupnp/soap"
)

// UPnP error codes that change what the mapper does (UPnP IGD:2
// WANIPConnection:2 service, section 2.4).
const (
	codeUnauthorizedLegacy  = 401 // some routers answer this when UPnP mapping is not allowed
	codeNotAuthorized       = 606
	codeNoSuchEntry         = 714
	codeConflict            = 718 // the external port is mapped to someone else
	codeOnlyPermanentLeases = 725
)

// upnpCode extracts the UPnP error code from a SOAP fault, or 0.
func upnpCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	var c *codedError
	if errors.As(err, &c) {
		return c.code
	}
	return 0
}

// upnpDescription extracts the router's description of a SOAP fault.
func upnpDescription(err error) string {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		if d := f.Detail.UPnPError.ErrorDescription; d != "" {
			return d
		}
		return f.FaultString
	}
	return ""
}

// NoRouterError means no UPnP or NAT-PMP internet gateway answered on the LAN.
type NoRouterError struct {
	Details error // what the searches reported, for debug logs; may be nil
}

func (e *NoRouterError) Error() string {
	return "no UPnP or NAT-PMP router found on the local network (both may be turned off in the router's settings)"
}

// UnreachableError means the router that had our mapping stopped
// answering and no router answered a new search.
type UnreachableError struct {
	Router string
	Err    error // the failed request
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("router %s stopped answering UPnP requests (restarting, or UPnP switched off?); dsftp keeps trying", e.Router)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NotAuthorizedError means the router refused to map the port (UPnP 606 or
// 401): UPnP is on, but not allowed for this computer or this port.
type NotAuthorizedError struct {
	Router string
	Port   uint16
	Code   int
}

func (e *NotAuthorizedError) Error() string {
	return fmt.Sprintf("router %s refused to forward port %d (UPnP error %d: not authorized); allow UPnP port forwarding for this computer in the router's settings, or forward the port by hand and pass --advertise HOST:PORT", e.Router, e.Port, e.Code)
}

// RouterError is any other refusal from the router.
type RouterError struct {
	Router string
	Action string // "AddPortMapping", …
	Code   int    // UPnP error code, 0 when the failure was not a SOAP fault
	Err    error
}

func (e *RouterError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("router %s: %s failed with UPnP error %d (%s)", e.Router, e.Action, e.Code, upnpDescription(e.Err))
	}
	return fmt.Sprintf("router %s: %s: %v", e.Router, e.Action, e.Err)
}

func (e *RouterError) Unwrap() error { return e.Err }

// NotPublicError means the router's own internet address is private or
// carrier-grade NAT: there is another NAT in front of it, so a mapping on
// this router does not make the share reachable from the internet.
type NotPublicError struct {
	IP netip.Addr
}

func (e *NotPublicError) Error() string {
	if !e.IP.IsValid() {
		return "the router reports no public internet address, so people outside this network cannot connect to this share"
	}
	return fmt.Sprintf("the router's internet address %s is %s, so people outside this network cannot connect to this share", e.IP, describePrivate(e.IP))
}

// Advice is the plain-words explanation printed once when this happens.
func (e *NotPublicError) Advice() string {
	what := "Your router reports no public internet address: your internet provider\nprobably uses carrier-grade NAT (CGNAT), or a second router sits in front of yours."
	if e.IP.IsValid() {
		what = fmt.Sprintf("Your router's internet address is %s, which is %s:\nyour internet provider (or a second router) puts another NAT in front of yours.", e.IP, describePrivate(e.IP))
	}
	return what + `
People outside your network cannot connect to this share. You can still mount
everyone else's shares. To be reachable:
  - use IPv6 if your network has it (dsftp advertises global IPv6 addresses by itself);
  - forward a port by hand on the outer router, then pass --advertise PUBLIC-IP:PORT;
  - or run the share on a machine with a public address (a VPS) and pass --advertise HOST:PORT.`
}

// IsPublic reports whether ip can be reached from the internet: not
// private (10/8, 172.16/12, 192.168/16, fc00::/7), not carrier-grade NAT
// (100.64/10), not loopback, link-local, multicast, unspecified or a
// reserved documentation/benchmark range (which real routers, miniupnpd
// among them, also refuse as an external address).
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),   // RFC 6598 carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // RFC 6890 protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // RFC 5737 TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // RFC 2544 benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // RFC 5737 TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // RFC 5737 TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("2001:db8::/32"),   // RFC 3849 documentation
}

func describePrivate(ip netip.Addr) string {
	switch {
	case netip.MustParsePrefix("100.64.0.0/10").Contains(ip):
		return "a carrier-grade NAT (CGNAT) address"
	case ip.IsPrivate():
		return "a private address"
	default:
		return "not a public internet address"
	}
}
