package discord

import (
	"context"
	"time"
)

// closeTimeout bounds deleting the advert on the way out, so exit never
// hangs on Discord and a stop stays under 2 s (a DELETE takes a fraction
// of a second; an advert left behind expires by itself).
const closeTimeout = 1500 * time.Millisecond

// Run ties a started discovery to ctx, the lifecycle shape every
// long-running part of dsftp has: when ctx ends, the advert is deleted at
// once (peers drop us while the rest of the process winds down); when
// discovery stops on a fatal error first, Run returns that error, after
// the advert is gone.
func (d *Discovery) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.Done():
	}
	cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := d.Close(cctx); err != nil {
		d.log.Warn("could not delete the Discord advert; it expires by itself", "err", err)
	}
	return d.Err()
}
