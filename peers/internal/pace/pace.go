// Package pace holds the timing helper discovery (peers/discord,
// peers/lan) shares: jittered intervals, so peers started together do not
// stay in step.
package pace

import (
	"math/rand/v2"
	"time"
)

// Jitter returns d moved at random by up to percent of it either way; d
// itself when it is not positive.
func Jitter(d time.Duration, percent int) time.Duration {
	if d <= 0 {
		return d
	}
	spread := d * time.Duration(percent) / 100
	return d - spread + rand.N(2*spread+1)
}
