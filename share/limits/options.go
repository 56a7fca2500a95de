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
