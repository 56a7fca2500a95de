// Package limits holds the share's limits against hostile clients, apart
// from the SSH and SFTP serving that obeys them.
//
// Before login a connection holds a pre-login slot (Gate.Admit): at most
// MaxStartups.Full at once, with random early drop from MaxStartups.Start
// on (startups.go), at most MaxStartupsPerSource from one source, where a
// newcomer takes the slot of its source's oldest silent connection
// (silent.go), and none at all from a source serving a penalty for failed
// or stalled logins (penalties.go). After login a connection holds a
// logged-in slot (Gate.Login): at most MaxConns, MaxConnsPerKey with one
// client key and MaxConnsPerSource from one source. Its SFTP sessions
// share a budget of MaxRequestsPerConn requests in flight, and each
// queues at most MaxQueued bytes behind it (flow.go).
//
// What counts as one source is a Source: an IPv4 address, an IPv6 /64, or
// a member for connections that a member's route carries.
package limits
