package instance

import (
	"slices"
	"strings"
	"time"
)

// The dial-back check (peers/route/README.md): an address the router
// says it forwards is only believed once another member dialed it and our
// share saw that dial arrive with the nonce we gave for it (whatever the
// member replies). Until a member could be asked, it is believed.
const (
	dialBackSettle = 5 * time.Second  // after an address change: let the advert reach the members
	dialBackEvery  = 10 * time.Minute // re-check, in case the router dropped the mapping
	dialBackRetry  = 2 * time.Second  // first retry when nobody could check; doubles
)

// dialBackResult is what the last check of addrs found.
type dialBackResult struct {
	addrs   []string // the public addresses checked
	reached []string
}

// updateReachable decides whether the share can be dialed from the
// internet: it advertises a public address, and the last check of these
// addresses (if any) reached one.
func (in *Instance) updateReachable() {
	var public []string
	if p := in.public.Load(); p != nil {
		public = *p
	}
	ok := len(public) > 0
	if r := in.dialBack.Load(); ok && r != nil && slices.Equal(r.addrs, public) {
		ok = len(r.reached) > 0
	}
	in.reachable.Store(ok)
	in.publishRoutes()
}

// startDialBack has members check our public addresses after every
// change and every 10 minutes.
func (in *Instance) startDialBack() {
	if in.routes == nil || in.Pool == nil || in.Share == nil {
		return
	}
	in.g.Go(func() error {
		t := time.NewTimer(dialBackSettle)
		defer t.Stop()
		var retry time.Duration
		for {
			select {
			case <-in.ctx.Done():
				return nil
			case <-in.recheck:
				t.Reset(dialBackSettle)
				retry = 0
				continue
			case <-t.C:
			}
			if in.checkReach() {
				retry = 0
				t.Reset(dialBackEvery)
			} else {
				// Nobody could check (no other member yet, or none has
				// our new advert): ask again soon, since until then a
				// mapping that does not work keeps everyone out.
				retry = min(max(2*retry, dialBackRetry), dialBackEvery)
				t.Reset(retry)
			}
		}
	})
}

// checkReach asks members to dial our public addresses; false when
// nobody could check them.
func (in *Instance) checkReach() bool {
	var public []string
	if p := in.public.Load(); p != nil {
		public = *p
	}
	if len(public) == 0 {
		return true
	}
	reached, checked := in.routes.CheckReachable(in.ctx, in.Pool, in.Registry.List(), in.self.id(), public)
	if checked == 0 {
		return false
	}
	prev := in.dialBack.Swap(&dialBackResult{addrs: public, reached: reached})
	in.updateReachable()
	changed := prev == nil || !slices.Equal(prev.addrs, public) || len(prev.reached) == 0 != (len(reached) == 0)
	switch {
	case !changed:
	case len(reached) == 0:
		in.log.Warn("members could not reach the share at its public address; the router's mapping does not work from outside, so members reach it through reverse connections",
			"addrs", strings.Join(public, " "), "members_asked", checked)
	default:
		in.log.Info("members reached the share at its public address", "reached", strings.Join(reached, " "), "members_asked", checked)
	}
	return true
}
