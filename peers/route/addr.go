// Package route holds everything about the routes between members beyond
// dialing an advertised address: the reverse connections a member that
// nobody can dial keeps to a few that can, relays through the member
// holding one, and the dial-back check that tells whether an advertised
// address can be dialed at all. README.md beside this file is the design.
//
// It knows the wire (channel and request names, payloads), the table of
// reverse connections this share holds (Table), the serving side of
// offers, relays and dial-back requests on the share's logged-in
// connections (Server, handed the SSH requests and channels that the
// share does not serve itself), keeping our own reverse connections
// (KeepReverse) and asking members to dial us back (CheckReachable). It
// imports neither the share nor the session pool: what it needs of them
// (an SSH client to a member with its host key checked, serving a stream
// or SFTP channels) arrives as small interfaces and function values, wired
// in cmd/internal/instance.
package route

import "strings"

// Route pseudo-addresses: the pool dials them beside a peer's advertised
// addresses, and reports which one a connection took.
const (
	// Punched is a stream over a QUIC path punched through NAT to the
	// peer's UDP candidates (peers/punch).
	Punched = "punched"
	// Reverse is a channel over the peer's reverse connection to us.
	Reverse = "reverse"
	// TURN is a stream over a QUIC path through a TURN server's relayed
	// address, ours or the peer's (peers/punch.Relay).
	TURN = "turn"
	// relayPrefix + the via member's ID is a pipe through that member.
	relayPrefix = "relay via "
)

// RelayVia is the pseudo-address of a relay through member via.
func RelayVia(via string) string { return relayPrefix + via }

// RelayOf returns the member a relay pseudo-address goes through.
func RelayOf(addr string) (via string, ok bool) { return strings.CutPrefix(addr, relayPrefix) }

// Ranks of routes, best first (Rank).
const (
	RankDirect  = 0 // an advertised address
	RankPunched = 1 // our own path, but over UDP and kept by keep-alives
	RankReverse = 2 // the peer's own reverse connection to us
	RankRelay   = 3 // a third member's bandwidth, capped by it
	RankTURN    = 4 // a TURN server's bandwidth, the last resort
)

// Rank orders the routes of addr from best to worst (RankDirect …
// RankTURN).
func Rank(addr string) int {
	switch {
	case addr == TURN:
		return RankTURN
	case addr == Punched:
		return RankPunched
	case addr == Reverse:
		return RankReverse
	case strings.HasPrefix(addr, relayPrefix):
		return RankRelay
	}
	return RankDirect
}
