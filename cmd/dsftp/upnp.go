package main

// The reachability flags: the UPnP port mapping and the advertised
// addresses of every command that serves a share (share, mount).

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/punch"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/share/portmap"
	"github.com/dsftp/dsftp/share/reach"
)

// upnpFlags are the reachability flags, read straight into the instance's
// settings (check returns them validated).
type upnpFlags struct {
	r    instance.Reach
	stun []string
	turn []string
}

// envSTUN, when set, is the default of --stun (comma-separated, or none).
const envSTUN = "DSFTP_STUN"

// envTURN, when set, is the default of --turn (space-separated URLs): it
// keeps the TURN password off the command line, which other users of the
// machine can read (ps).
const envTURN = "DSFTP_TURN"

func (f *upnpFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.r.NoUPnP, "no-upnp", false, "do not ask the home router to forward the share's port (UPnP, NAT-PMP)")
	fs.StringArrayVar(&f.r.Advertise, "advertise", nil, "also advertise `HOST:PORT` to peers, e.g. a port you forwarded by hand or a VPS (repeatable)")
	fs.DurationVar(&f.r.Lease, "upnp-lease", portmap.DefaultLease, "lease of the UPnP port mapping; renewed at half of it")
	fs.BoolVar(&f.r.NoRelay, "no-relay", false, "never relay between two other members, and never ask one to relay for us")
	fs.Int64Var(&f.r.RelayRate, "relay-rate", route.DefaultRelayRate, "cap in `BYTES` per second of all the relays this share carries for other members together, both directions, shared equally between the members relaying (0: no cap)")
	fs.IntVar(&f.r.ReverseConns, "reverse-conns", route.DefaultReverseConns, "when nobody can dial our share, keep reverse connections to this many reachable members (0: none)")
	fs.BoolVar(&f.r.NoQUIC, "no-quic", false, "do not serve the share over UDP (QUIC), nor punch through NAT to other members")
	fs.IntVar(&f.r.UDPPort, "udp-port", 0, "UDP `PORT` of the share's QUIC path (default: the TCP port's number)")
	fs.StringArrayVar(&f.stun, "stun", nil, "STUN server `HOST:PORT` that tells the share its public UDP address (repeatable; none: no STUN; default: $"+envSTUN+", else "+strings.ReplaceAll(punch.DefaultSTUN, ",", " and ")+")")
	fs.StringArrayVar(&f.turn, "turn", nil, "relay the share's QUIC path through the TURN server at `turn://USER:PASS@HOST:PORT`, the last resort for members that can neither dial nor punch this one (repeatable, tried in order; default: $"+envTURN+", space-separated, which keeps the password out of ps)")
	// Only tests need another lease; a short one just makes the router busy.
	_ = fs.MarkHidden("upnp-lease")
}

// check validates the flags and returns the instance's reachability
// settings, with the canonical --advertise values.
func (f *upnpFlags) check() (*instance.Reach, error) {
	r := f.r
	r.Advertise = nil
	for _, a := range f.r.Advertise {
		v, err := reach.ParseAdvertise(a)
		if err != nil {
			return nil, usageError{err}
		}
		r.Advertise = append(r.Advertise, v)
	}
	if r.RelayRate < 0 || r.ReverseConns < 0 || r.ReverseConns > 8 {
		return nil, usageError{fmt.Errorf("--relay-rate %d, --reverse-conns %d: want a rate of 0 or more and 0 to 8 reverse connections", r.RelayRate, r.ReverseConns)}
	}
	if r.UDPPort < 0 || r.UDPPort > 65535 {
		return nil, usageError{fmt.Errorf("--udp-port %d: want a UDP port from 1 to 65535 (0: the TCP port's number)", r.UDPPort)}
	}
	stun := f.stun
	if len(stun) == 0 {
		if v := strings.TrimSpace(os.Getenv(envSTUN)); v != "" {
			stun = strings.Split(v, ",")
		}
	}
	servers, err := punch.ParseSTUN(stun)
	if err != nil {
		return nil, usageError{err}
	}
	r.STUN = servers
	if r.TURN, err = punch.ParseTURN(f.turn); err != nil {
		return nil, usageError{err}
	}
	if len(f.turn) == 0 {
		if r.TURN, err = punch.ParseTURN(strings.Fields(os.Getenv(envTURN))); err != nil {
			return nil, usageError{fmt.Errorf("$%s: %w", envTURN, err)}
		}
	}
	if len(r.TURN) > 0 && r.NoQUIC {
		return nil, usageError{errors.New("--turn relays the share's QUIC path, which --no-quic turns off")}
	}
	if r.Lease < 0 || (r.Lease > 0 && r.Lease < 2*time.Second) {
		return nil, usageError{fmt.Errorf("--upnp-lease %v: want at least 2s", r.Lease)}
	}
	return &r, nil
}
