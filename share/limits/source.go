package limits

import (
	"net"
	"net/netip"
)

// Source is what pre-login limits, penalties and per-source caps count
// by: the address a connection comes from (SourceOf), or, for one that
// arrived over a stream a member opened (a relay, a reverse connection),
// the member it is for (MemberSource). Comparable, so it keys maps; the
// zero Source is unknown and is never penalised.
type Source struct {
	prefix netip.Prefix
	member string
}

// SourceOf is the source of a connection from a: the IPv4 address, or
// the /64 of an IPv6 one (one host usually holds a whole /64, so counting
// single IPv6 addresses would count nothing). A QUIC stream's address is
// its connection's UDP source, counted like a TCP connection's; other
// addresses give the unknown Source.
func SourceOf(a net.Addr) Source {
	ap, ok := a.(interface{ AddrPort() netip.AddrPort })
	if !ok {
		return Source{}
	}
	ip := ap.AddrPort().Addr().Unmap()
	if ip.Is4() {
		return Source{prefix: netip.PrefixFrom(ip, 32)}
	}
	p, _ := ip.WithZone("").Prefix(64)
	return Source{prefix: p}
}

// MemberSource is the source of a stream that the member with host key
// fingerprint holder opened over its reverse connection for the member
// whose client key has fingerprint clientKey ("" when it does not say: the
// holder's own). It is the pair, not the client key alone: a holder that
// names someone else's key can get that key penalised only on streams it
// carries itself.
func MemberSource(holder, clientKey string) Source {
	if clientKey == "" {
		return Source{member: holder}
	}
	return Source{member: clientKey + " via " + holder}
}

func (s Source) valid() bool { return s.prefix.IsValid() || s.member != "" }

// String shows a source as an address, a /64 for IPv6, or the member.
func (s Source) String() string {
	switch {
	case s.member != "":
		return "member " + s.member
	case !s.prefix.IsValid():
		return "unknown"
	case s.prefix.Addr().Is4():
		return s.prefix.Addr().String()
	}
	return s.prefix.String()
}
