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
	// Reverse is a channel over the peer's reverse connection to us.
	Reverse = "reverse"
	// relayPrefix + the via member's ID is a pipe through that member.
	relayPrefix = "relay via "
)

// RelayVia is the pseudo-address of a relay through member via.
func RelayVia(via string) string { return relayPrefix + via }

// RelayOf returns the member a relay pseudo-address goes through.
func RelayOf(addr string) (via string, ok bool) { return strings.CutPrefix(addr, relayPrefix) }

// Rank orders the routes of addr from best to worst: 0 for an advertised
// address (direct), 1 for the peer's own reverse connection to us, 2 for
// a relay (a third member's bandwidth, capped by it).
func Rank(addr string) int {
	switch {
	case addr == Reverse:
		return 1
	case strings.HasPrefix(addr, relayPrefix):
		return 2
	}
	return 0
}
