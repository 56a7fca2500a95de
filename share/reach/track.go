package reach

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dsftp/dsftp/share/portmap"
)

// TrackOptions configure Track.
type TrackOptions struct {
	// Port is the share's TCP listening port. Required.
	Port uint16
	// Bind is the address the share listens on. A specific address (not
	// 0.0.0.0 or ::) is advertised alone and turns UPnP off: the router
	// would forward to an address the share does not listen on, and a
	// loopback-only share must not talk to the LAN at all.
	Bind netip.Addr
	// Advertise are checked --advertise values (see ParseAdvertise).
	Advertise []string
	// NoUPnP turns port mapping off (--no-upnp).
	NoUPnP bool
	// Lease is the UPnP lease; zero means portmap.DefaultLease.
	Lease time.Duration
	// CheckInterval is how often the router is checked; zero means
	// portmap.DefaultCheckInterval. Tests shorten it.
	CheckInterval time.Duration
	// OnChange receives the advertised addresses: once at the start (local
	// and manual addresses, without waiting for the router) and again each
	// time they change. Calls come one at a time from one goroutine.
	OnChange func([]Addr)
	// Warn receives plain-words warnings about reachability (see
	// portmap.Options.Warn); nil means Logger.Warn.
	Warn func(text string)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Interfaces lists local addresses; nil means LocalInterfaces.
	Interfaces func() ([]Interface, error)
}

// Tracker keeps the advertised addresses up to date while the port mapping
// comes and goes.
type Tracker struct {
	opts TrackOptions
	log  *slog.Logger
	done chan struct{}

	mu       sync.Mutex
	addrs    []Addr
	reported bool // OnChange has been called at least once
}

// Track starts mapping opts.Port on the router (unless NoUPnP) and reports
// the advertised addresses through opts.OnChange. When ctx is done it
// removes the mapping; Wait returns once that is finished.
func Track(ctx context.Context, opts TrackOptions) *Tracker {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &Tracker{opts: opts, log: log, done: make(chan struct{})}
	changes := make(chan portmap.Status, 1)
	t.update(portmap.Status{})
	if b := opts.Bind.Unmap(); !opts.NoUPnP && b.IsValid() && !b.IsUnspecified() {
		log.Info("UPnP port mapping is off: the share listens on one address only", "listen", b)
		opts.NoUPnP = true
	}
	if opts.NoUPnP {
		close(t.done)
		return t
	}
	m := portmap.New(portmap.Options{
		InternalPort:  opts.Port,
		Lease:         opts.Lease,
		CheckInterval: opts.CheckInterval,
		Logger:        log,
		Warn:          opts.Warn,
		OnChange: func(s portmap.Status) {
			// Keep only the newest status; the mapper never blocks on us.
			select {
			case <-changes:
			default:
			}
			changes <- s
		},
	})
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case s := <-changes:
				t.update(s)
			case <-ctx.Done():
				return
			}
		}
	})
	go func() {
		wg.Wait()
		close(t.done)
	}()
	return t
}

func (t *Tracker) update(s portmap.Status) {
	as, err := Select(Options{
		Port:       t.opts.Port,
		Bind:       t.opts.Bind,
		External:   s.External,
		Router:     s.Router,
		Advertise:  t.opts.Advertise,
		Interfaces: t.opts.Interfaces,
	})
	if err != nil {
		t.log.Warn("cannot list this computer's addresses", "err", err)
	}
	t.mu.Lock()
	changed := !t.reported || !slices.Equal(as, t.addrs)
	t.addrs, t.reported = as, true
	t.mu.Unlock()
	if changed && t.opts.OnChange != nil {
		t.opts.OnChange(slices.Clone(as))
	}
}

// Wait blocks until the tracker has stopped and the mapping is removed.
func (t *Tracker) Wait() { <-t.done }
