package instance

import (
	"fmt"
	"strings"
	"sync"

	"github.com/dsftp/dsftp/share/reach"
)

// startReach forwards the share's port on the router (unless --no-upnp,
// or the share listens on a specific address such as 127.0.0.1) and prints
// the advertised addresses now and after every change (mapping made, lost,
// external address changed), re-advertising them in Discord. The mapping
// is removed before the instance stops.
func (in *Instance) startReach() error {
	if in.cfg.Reach == nil || in.Share == nil {
		return nil
	}
	listen := reach.Bound(in.Share.Addrs())
	if listen.Port() == 0 {
		return fmt.Errorf("start port mapping: the share has no port (listening on %v)", listen)
	}
	noUPnP := in.cfg.Reach.NoUPnP
	if !noUPnP && in.cfg.Discord == nil && in.cfg.LAN != nil {
		// LAN peers dial the share's local addresses; a router's port
		// mapping only serves peers elsewhere, which LAN discovery has not.
		in.log.Info("UPnP port mapping is off: LAN discovery only")
		noUPnP = true
	}
	var mu sync.Mutex // warnings and address changes may interleave otherwise
	opts := reach.TrackOptions{
		Port:      listen.Port(),
		Bind:      listen.Addr(),
		Advertise: in.cfg.Reach.Advertise,
		NoUPnP:    noUPnP,
		Lease:     in.cfg.Reach.Lease,
		Logger:    in.log,
		Warn: func(text string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(in.cfg.Err, "dsftp: warning: %s\n", strings.ReplaceAll(text, "\n", "\n  "))
		},
		OnChange: func(as []reach.Addr) {
			mu.Lock()
			defer mu.Unlock()
			in.log.Info("advertised addresses", "addrs", reach.Strings(as))
			writeAddrs(in.cfg.Out, as)
			in.setReachable(as)
			if d := in.discord.Load(); d != nil {
				d.SetAddrs(reach.Strings(as))
			}
		},
	}
	// Track prints the first addresses before it returns, so they follow
	// the banner; Wait returns once the mapping is removed.
	t := reach.Track(in.ctx, opts)
	in.g.Go(func() error { t.Wait(); return nil })
	return nil
}
