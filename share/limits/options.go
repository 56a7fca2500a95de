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

import (
	"fmt"
	"time"
)

// Defaults for the zero values in Options.
const (
	DefaultMaxConns             = 64
	DefaultMaxConnsPerKey       = 8
	DefaultMaxConnsPerSource    = 16
	DefaultMaxStartupsPerSource = 8
	DefaultMaxRequestsPerConn   = 32
	DefaultPenaltyMax           = 10 * time.Minute
)

// Options configure a Gate. Zero values pick the defaults above (see
// FillDefaults).
type Options struct {
	// MaxConns caps concurrent logged-in connections.
	MaxConns int
	// MaxConnsPerKey caps logged-in connections with one client key, so
	// that one key (anyone's, on the LAN) cannot take every slot.
	// Password logins are capped per source only.
	MaxConnsPerKey int
	// MaxConnsPerSource caps logged-in connections from one source.
	MaxConnsPerSource int
	// MaxStartups is start:rate:full for connections that have not logged
	// in yet (see Startups); zero means DefaultStartups.
	MaxStartups Startups
	// MaxStartupsPerSource caps connections logging in at once from one
	// source; a new one beyond it takes the place of the source's oldest
	// connection that has not sent its version line (silent.go), or is
	// refused if there is none.
	MaxStartupsPerSource int
	// MaxRequestsPerConn caps the SFTP requests a logged-in connection
	// may have waiting for their replies (each session may have one
	// more); a session's reading stops at its cap (flow.go).
	MaxRequestsPerConn int
	// PenaltyMax is the longest a source that fails or stalls logins is
	// kept out (penalties.go). Negative turns penalties off.
	PenaltyMax time.Duration
}

// FillDefaults sets every zero (or, for counts, negative) field to its
// default and checks what is left.
func (o *Options) FillDefaults() error {
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&o.MaxConns, DefaultMaxConns)
	setInt(&o.MaxConnsPerKey, DefaultMaxConnsPerKey)
	setInt(&o.MaxConnsPerSource, DefaultMaxConnsPerSource)
	setInt(&o.MaxStartupsPerSource, DefaultMaxStartupsPerSource)
	setInt(&o.MaxRequestsPerConn, DefaultMaxRequestsPerConn)
	if o.MaxStartups == (Startups{}) {
		o.MaxStartups = DefaultStartups
	}
	if o.PenaltyMax == 0 {
		o.PenaltyMax = DefaultPenaltyMax
	}
	if err := o.MaxStartups.check(); err != nil {
		return fmt.Errorf("max startups %v: %w", o.MaxStartups, err)
	}
	return nil
}
