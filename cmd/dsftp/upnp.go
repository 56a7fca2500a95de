package main

// The reachability flags: the UPnP port mapping and the advertised
// addresses of every command that serves a share (share, mount).

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/portmap"
	"github.com/dsftp/dsftp/share/reach"
)

// upnpFlags are the reachability flags.
type upnpFlags struct {
	noUPnP    bool
	advertise []string
	lease     time.Duration
	noRelay   bool
	relayRate int64
	reverse   int
}

func (f *upnpFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.noUPnP, "no-upnp", false, "do not ask the home router to forward the share's port (UPnP)")
	fs.StringArrayVar(&f.advertise, "advertise", nil, "also advertise `HOST:PORT` to peers, e.g. a port you forwarded by hand or a VPS (repeatable)")
	fs.DurationVar(&f.lease, "upnp-lease", portmap.DefaultLease, "lease of the UPnP port mapping; renewed at half of it")
	fs.BoolVar(&f.noRelay, "no-relay", false, "never relay between two other members, and never ask one to relay for us")
	fs.Int64Var(&f.relayRate, "relay-rate", share.DefaultRelayRate, "cap in `BYTES` per second of each relay this share carries for two other members (0: no cap)")
	fs.IntVar(&f.reverse, "reverse-conns", pool.DefaultReverseConns, "when nobody can dial our share, keep reverse connections to this many reachable members (0: none)")
	// Only tests need another lease; a short one just makes the router busy.
	_ = fs.MarkHidden("upnp-lease")
}

// check validates the flags and returns the canonical --advertise values.
func (f *upnpFlags) check() ([]string, error) {
	var out []string
	for _, a := range f.advertise {
		v, err := reach.ParseAdvertise(a)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, v)
	}
	if f.relayRate < 0 || f.reverse < 0 || f.reverse > 8 {
		return nil, usageError{fmt.Errorf("--relay-rate %d, --reverse-conns %d: want a rate of 0 or more and 0 to 8 reverse connections", f.relayRate, f.reverse)}
	}
	if f.lease < 0 || (f.lease > 0 && f.lease < 2*time.Second) {
		return nil, usageError{fmt.Errorf("--upnp-lease %v: want at least 2s", f.lease)}
	}
	return out, nil
}

// config turns the flags, with the --advertise values check returned, into
// the instance's reachability settings.
func (f *upnpFlags) config(advertise []string) *instance.Reach {
	rate := f.relayRate
	if rate == 0 {
		rate = -1 // share: negative is no cap
	}
	return &instance.Reach{NoUPnP: f.noUPnP, Advertise: advertise, Lease: f.lease,
		NoRelay: f.noRelay, RelayRate: rate, ReverseConns: f.reverse}
}
