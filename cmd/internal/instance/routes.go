package instance

import (
	"slices"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/reach"
)

// Routes through other members (peers/route/README.md): a share that
// discovers members holds their reverse connections and relays for them;
// a share nobody can dial keeps reverse connections to a few members and
// says so in its adverts; the pool tries those routes beside the
// addresses.

// routesOn reports whether this instance takes part: it shares, finds
// members through Discord and knows how it is reached.
func (in *Instance) routesOn() bool {
	return in.cfg.Share != nil && in.cfg.Discord != nil && in.cfg.Reach != nil
}

// shareRoutes lets the share hold reverse connections, relay and see
// our dial-back checks arrive.
func (in *Instance) shareRoutes(opts *share.Options) {
	if !in.routesOn() {
		return
	}
	log := opts.Logger
	if log == nil {
		log = in.log
	}
	in.routes = route.NewTable(members{in}, log)
	rate := in.cfg.Reach.RelayRate
	if rate == 0 {
		rate = -1 // --relay-rate 0: no cap
	}
	wireRoutes(opts, in.routes, route.ServerOptions{NoRelay: in.cfg.Reach.NoRelay, RelayRate: rate})
}

// wireRoutes wires the routes of table t into share options: the
// share's extensions are served by a route.Server, and a dial-back check
// of ours arriving is an expected probe.
func wireRoutes(opts *share.Options, t *route.Table, so route.ServerOptions) {
	opts.Extensions = shareExtensions{route.NewServer(t, so)}
	opts.Probe = t.DialBackArrived
}

// shareExtensions hands the share's connections to the routes.
type shareExtensions struct{ s *route.Server }

func (e shareExtensions) Conn(c share.ConnInfo) share.ConnExtension {
	return e.s.Conn(route.ConnInfo(c))
}

// routeOptions gives the pool the reverse and relay routes.
func (in *Instance) routeOptions(po *pool.Options) {
	if in.routes == nil {
		return
	}
	po.Routes = in.routes
	po.NoRelay = in.cfg.Reach.NoRelay
	po.SelfID = in.self.id()
}

// startReverse keeps reverse connections while the share is unreachable.
func (in *Instance) startReverse() {
	if in.routes == nil || in.Pool == nil || in.Share == nil || in.cfg.Reach.ReverseConns == 0 {
		return
	}
	log := in.cfg.Pool.Logger
	if log == nil {
		log = in.log
	}
	o := route.ReverseOptions{
		Dialer:    in.Pool,
		Timeout:   in.Pool.Timeout(),
		Logger:    log,
		HostKey:   in.Share.Fingerprint(),
		Serve:     in.Share.ServeStream,
		ServeSFTP: in.Share.ServeReverse,
		Needed:    func() bool { return !in.reachable.Load() },
		Members:   func() []peers.Entry { return in.Registry.List() },
		Conns:     in.cfg.Reach.ReverseConns,
		OnChange: func(via []string) {
			in.via.Store(&via)
			in.publishRoutes()
		},
	}
	in.g.Go(func() error { return route.KeepReverse(in.ctx, o) })
}

// setReachable notes the advertised addresses that should be dialable
// from the internet (one the user gave, one the router forwards, a global
// IPv6 address) and has members check them (dialback.go).
func (in *Instance) setReachable(as []reach.Addr) {
	var public []string
	for _, a := range as {
		if a.Kind != reach.LAN {
			public = append(public, a.Addr)
		}
	}
	slices.Sort(public)
	in.public.Store(&public)
	in.updateReachable()
	select {
	case in.recheck <- struct{}{}:
	default:
	}
}

// publishRoutes puts reachability and the members holding our reverse
// connections into the next advert.
func (in *Instance) publishRoutes() {
	if in.routes == nil {
		return
	}
	var via []string
	if v := in.via.Load(); v != nil {
		via = *v
	}
	if d := in.discord.Load(); d != nil {
		d.SetRoutes(!in.reachable.Load(), via)
	}
}

// members answers the routes' membership questions from the registry,
// which is made after the share starts.
type members struct{ in *Instance }

func (m members) ByID(id string) (peers.Entry, bool) {
	if m.in.Registry == nil {
		return peers.Entry{}, false
	}
	return m.in.Registry.ByID(id)
}

func (m members) ClientKeyMember(fp string) (string, bool) {
	if m.in.Registry == nil {
		return "", false
	}
	return m.in.Registry.ClientKeyMember(fp)
}
