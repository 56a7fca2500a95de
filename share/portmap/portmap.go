// Package portmap forwards the share's TCP port through the home router with
// UPnP IGD or NAT-PMP, keeps the mapping alive and removes it on exit.
//
// A Mapper finds the router (WANIPConnection:2, WANIPConnection:1 and
// WANPPPConnection:1 searched in parallel), maps external port = internal
// port when it is free and another port otherwise, renews the lease at
// half-life and notices a rebooted router, a lost lease or a new external
// address, re-mapping and reporting each change. One timer drives it all, in
// the style of syncthing's lib/nat.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultLease           = time.Hour
	DefaultDiscoverTimeout = 5 * time.Second
	DefaultCheckInterval   = 5 * time.Minute
	DefaultDescription     = "dsftp"
	// operationTimeout bounds each SOAP call: a router that stops answering
	// must not stall the mapper (or shutdown) for long.
	operationTimeout = 5 * time.Second
	// cleanupTimeout bounds deleting the mapping on the way out.
	cleanupTimeout = 1500 * time.Millisecond
	// alternatives is how many other external ports are tried when the
	// router lacks AddAnyPortMapping and the wanted port is taken.
	alternatives = 3
)

// Options configure a Mapper.
type Options struct {
	// InternalPort is the share's TCP listening port. Required.
	InternalPort uint16
	// Lease is the mapping lifetime asked of the router; renewed at half of
	// it. Zero means DefaultLease (1 h). Routers that only allow permanent
	// mappings (UPnP error 725) get lease 0 instead.
	Lease time.Duration
	// CheckInterval is how often the router is asked whether the mapping
	// and the external address are still what we advertised. Zero means
	// DefaultCheckInterval; it is never longer than half the lease.
	CheckInterval time.Duration
	// DiscoverTimeout bounds each search for the router. Zero means
	// DefaultDiscoverTimeout.
	DiscoverTimeout time.Duration
	// Description is the mapping's name in the router's table. Empty
	// means DefaultDescription.
	Description string
	// OnChange is called, from the mapper's goroutine, with the new Status
	// each time it changes (mapped, lost, new external address, error).
	OnChange func(Status)
	// Logger receives progress. Nil means slog.Default().
	Logger *slog.Logger
	// Warn receives warnings meant for the user, in plain words, possibly
	// several lines (no router, router refused, private external address).
	// Each is given once per change. Nil means Logger.Warn.
	Warn func(text string)
	// Discover finds routers. Nil means DiscoverAny (real UPnP and
	// NAT-PMP); tests may replace it.
	Discover func(ctx context.Context, timeout time.Duration) ([]Device, error)
}

// setDefaults fills the fields left zero (negative durations too) with
// their defaults.
func (o *Options) setDefaults() {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.DiscoverTimeout <= 0 {
		o.DiscoverTimeout = DefaultDiscoverTimeout
	}
	if o.Description == "" {
		o.Description = DefaultDescription
	}
	if o.Discover == nil {
		o.Discover = DiscoverAny
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Status is the mapper's current view of reachability from the internet.
type Status struct {
	// External is the public address:port peers on the internet can dial;
	// invalid when there is none (see Err).
	External netip.AddrPort
	// ExternalIP is the router's WAN address as reported, even when it is
	// not public; invalid when the router was not reached.
	ExternalIP netip.Addr
	// Internal is the LAN address:port the router forwards to.
	Internal netip.AddrPort
	// Router is the gateway's LAN address; empty when none was found.
	Router string
	// Lease is the mapping lifetime; 0 with a valid External is permanent.
	Lease time.Duration
	// Err says why there is no External address.
	Err error
}

// ErrStopped is the Status.Err after Run returned.
var ErrStopped = errors.New("port mapping stopped")

// Mapped reports whether the share is reachable through the router.
func (s Status) Mapped() bool { return s.External.IsValid() }

func (s Status) same(o Status) bool {
	return s.External == o.External && s.ExternalIP == o.ExternalIP && s.Internal == o.Internal &&
		s.Router == o.Router && s.Lease == o.Lease && errString(s.Err) == errString(o.Err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Mapper keeps one TCP port mapped on the home router. Create it with New
// and run it with Run.
type Mapper struct {
	opts  Options
	log   *slog.Logger
	check time.Duration

	// Owned by the Run goroutine.
	dev     Device
	ext     uint16        // mapped external port, 0 when none
	lease   time.Duration // lease of the current mapping (0: permanent)
	renewAt time.Time
	tried   uint16 // port of an add whose answer we did not see (cancelled)
	// permanentOnly is set once the router said it only allows permanent
	// mappings (UPnP error 725).
	permanentOnly bool

	mu     sync.Mutex
	status Status
}

// New returns a Mapper for opts; it does nothing until Run.
func New(opts Options) *Mapper {
	opts.setDefaults()
	return &Mapper{opts: opts, log: opts.Logger.With("part", "upnp"), check: min(opts.CheckInterval, opts.Lease/2)}
}

// Run maps the port and keeps it mapped until ctx is done, then deletes the
// mapping (bounded by a few seconds) and returns. It returns an error only
// for bad options; router trouble is reported to OnChange and logged.
func (m *Mapper) Run(ctx context.Context) error {
	if m.opts.InternalPort == 0 {
		return errors.New("portmap: InternalPort is required")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			m.cleanup(ctx)
			return nil
		case <-timer.C:
		}
		timer.Reset(m.step(ctx))
	}
}

// step brings the mapping up to date and returns when to look again.
// When ctx ends in the middle, step returns without touching the state, so
// that cleanup still knows which mapping to delete.
func (m *Mapper) step(ctx context.Context) time.Duration {
	if m.dev == nil {
		dev, err := m.discover(ctx)
		if ctx.Err() != nil {
			return m.check
		}
		if err != nil {
			m.publish(Status{Err: err})
			return m.check
		}
		m.dev = dev
	}
	ip, err := m.externalIP(ctx)
	if ctx.Err() != nil {
		return m.check
	}
	if err != nil {
		// The router stopped answering: rebooted, replaced, frozen, or
		// UPnP was switched off. Search again; until something answers,
		// keep what we know, so that exit can still delete our mapping.
		m.log.Info("router stopped answering; searching again", "router", m.dev.ID(), "err", err)
		dev, derr := m.discover(ctx)
		if ctx.Err() != nil {
			return m.check
		}
		if derr != nil {
			m.publish(Status{Router: m.dev.Router(), Err: &UnreachableError{Router: m.dev.Router(), Err: err}})
			return m.check
		}
		// The same router (after a reboot, say) may or may not still have
		// our mapping: the verify below finds out. Another router has not.
		if dev.ID() != m.dev.ID() {
			m.ext = 0
		}
		m.dev = dev
		if ip, err = m.externalIP(ctx); ctx.Err() != nil {
			return m.check
		}
		if err != nil {
			m.publish(Status{Router: m.dev.Router(), Err: err})
			return m.check
		}
	}
	base := Status{ExternalIP: ip, Router: m.dev.Router()}
	if !IsPublic(ip) {
		if m.ext != 0 {
			m.deleteMapping(ctx, m.ext)
			m.ext = 0
		}
		base.Err = &NotPublicError{IP: ip}
		m.publish(base)
		return m.check
	}

	switch {
	case m.ext == 0:
		err = m.mapPort(ctx)
	case m.lease > 0 && !time.Now().Before(m.renewAt):
		err = m.renew(ctx)
	default:
		err = m.verify(ctx)
	}
	if ctx.Err() != nil {
		return m.check
	}
	if err != nil {
		base.Err = err
		m.publish(base)
		return m.check
	}
	base.External = netip.AddrPortFrom(ip, m.ext)
	base.Internal = netip.AddrPortFrom(m.dev.LocalIP(), m.opts.InternalPort)
	base.Lease = m.lease
	m.publish(base)
	if m.lease > 0 {
		return max(min(m.check, time.Until(m.renewAt)), 0)
	}
	return m.check
}

func (m *Mapper) discover(ctx context.Context) (Device, error) {
	start := time.Now()
	devs, err := m.opts.Discover(ctx, m.opts.DiscoverTimeout)
	if err != nil {
		var nr *NoRouterError
		if errors.As(err, &nr) && nr.Details != nil {
			m.log.Debug("UPnP search details", "err", nr.Details)
		}
		return nil, err
	}
	m.log.Info("found port-mapping router", "router", devs[0].ID(), "local", devs[0].LocalIP(), "took", time.Since(start).Round(time.Millisecond))
	return devs[0], nil
}

func (m *Mapper) externalIP(ctx context.Context) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, operationTimeout)
	defer cancel()
	ip, err := m.dev.ExternalIP(ctx)
	if err != nil {
		return netip.Addr{}, m.routerError("GetExternalIPAddress", err)
	}
	return ip, nil
}

// mapPort creates a new mapping: the internal port itself when free,
// otherwise a port the router picks (IGDv2) or one of a few deterministic
// alternatives.
func (m *Mapper) mapPort(ctx context.Context) error {
	want := m.opts.InternalPort
	err := m.add(ctx, want)
	if err == nil || upnpCode(err) != codeConflict {
		return err
	}
	m.log.Info("external port is taken on the router; trying another", "port", want)

	got, err := m.addAny(ctx, want, m.leaseToAsk())
	if lease := m.leaseToAsk(); lease > 0 && upnpCode(err) == codeOnlyPermanentLeases {
		m.onlyPermanent()
		got, err = m.addAny(ctx, want, 0)
	}
	if err == nil {
		m.mapped(got, m.leaseToAsk())
		return nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		m.log.Debug("AddAnyPortMapping failed; trying alternatives", "err", err)
	}
	for _, p := range alternativePorts(m.dev.LocalIP(), want) {
		err = m.add(ctx, p)
		if err == nil {
			return nil
		}
		if upnpCode(err) != codeConflict {
			return err
		}
	}
	return err
}

// leaseToAsk is the lease new mappings ask for.
func (m *Mapper) leaseToAsk() time.Duration {
	if m.permanentOnly {
		return 0
	}
	return m.opts.Lease
}

func (m *Mapper) onlyPermanent() {
	m.permanentOnly = true
	m.log.Warn("the router only allows permanent port mappings; dsftp removes its mapping when it exits", "router", m.dev.Router())
}

// add maps external port p with the configured lease, falling back to a
// permanent lease when the router supports nothing else (UPnP error 725).
func (m *Mapper) add(ctx context.Context, p uint16) error {
	lease := m.leaseToAsk()
	err := m.addOnce(ctx, p, lease)
	if lease > 0 && upnpCode(err) == codeOnlyPermanentLeases {
		m.onlyPermanent()
		lease = 0
		err = m.addOnce(ctx, p, 0)
	}
	if err != nil {
		return m.routerError("AddPortMapping", err)
	}
	m.mapped(p, lease)
	return nil
}

func (m *Mapper) addAny(ctx context.Context, want uint16, lease time.Duration) (uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, operationTimeout)
	defer cancel()
	m.tried = want
	got, err := m.dev.AddAnyPortMapping(ctx, want, m.opts.InternalPort, m.opts.Description, lease)
	if err == nil || ctx.Err() == nil {
		m.tried = 0
	}
	return got, err
}

func (m *Mapper) addOnce(ctx context.Context, p uint16, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, operationTimeout)
	defer cancel()
	m.tried = p
	err := m.dev.AddPortMapping(ctx, p, m.opts.InternalPort, m.opts.Description, lease)
	if err == nil || ctx.Err() == nil {
		m.tried = 0 // the router answered: we know whether the mapping exists
	}
	return err
}

func (m *Mapper) mapped(p uint16, lease time.Duration) {
	m.ext, m.lease = p, lease
	if lease > 0 {
		m.renewAt = time.Now().Add(m.lease / 2)
	}
}

// renew re-adds the mapping before its lease runs out. Re-adding an
// existing mapping for the same client only refreshes its lease; if the
// mapping was lost and someone else took the port, map another.
func (m *Mapper) renew(ctx context.Context) error {
	p := m.ext
	err := m.add(ctx, p)
	if err == nil {
		m.log.Debug("renewed port mapping", "external", p, "lease", m.lease)
		return nil
	}
	if upnpCode(err) == codeConflict {
		m.log.Info("our external port was taken by someone else; mapping another", "port", p)
		m.ext = 0
		return m.mapPort(ctx)
	}
	return err
}

// verify checks that the router still forwards our port to us. Routers
// forget mappings when they reboot, and some drop them without telling.
func (m *Mapper) verify(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, operationTimeout)
	client, internal, err := m.dev.PortMapping(octx, m.ext)
	cancel()
	if err == nil && client == m.dev.LocalIP() && internal == m.opts.InternalPort {
		return nil
	}
	if err == nil || upnpCode(err) == codeNoSuchEntry {
		m.log.Info("the router lost our port mapping; mapping again", "external", m.ext)
	} else {
		// Some routers lack this query; re-adding is the check then.
		m.log.Debug("could not read our port mapping; adding it again", "err", err)
	}
	old := m.ext
	m.ext = 0
	if err := m.add(ctx, old); err == nil || upnpCode(err) != codeConflict {
		return err
	}
	return m.mapPort(ctx)
}

func (m *Mapper) cleanup(ctx context.Context) {
	ports := []uint16{m.ext, m.tried}
	if m.dev == nil {
		return
	}
	// The run's context is done; deleting still gets a moment, short
	// enough that a stop stays under 2 s with a router that stopped
	// answering (the lease ends a mapping left behind).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i, p := range ports {
		if p == 0 || (i == 1 && p == m.ext) {
			continue
		}
		m.deleteMapping(dctx, p)
	}
	m.ext = 0
	m.publish(Status{Router: m.dev.Router(), Err: ErrStopped})
}

func (m *Mapper) deleteMapping(ctx context.Context, p uint16) {
	ctx, cancel := context.WithTimeout(ctx, operationTimeout)
	defer cancel()
	err := m.dev.DeletePortMapping(ctx, p)
	switch {
	case err == nil:
		m.log.Info("removed port mapping", "router", m.dev.Router(), "external", p)
	case upnpCode(err) == codeNoSuchEntry:
	default:
		m.log.Warn("could not remove port mapping; the router drops it when the lease ends", "router", m.dev.Router(), "external", p, "err", m.routerError("DeletePortMapping", err))
	}
}

func (m *Mapper) routerError(action string, err error) error {
	code := upnpCode(err)
	router := m.dev.Router()
	if code == codeNotAuthorized || code == codeUnauthorizedLegacy {
		return &NotAuthorizedError{Router: router, Port: m.opts.InternalPort, Code: code}
	}
	var re *RouterError
	if errors.As(err, &re) {
		return err
	}
	return &RouterError{Router: router, Action: action, Code: code, Err: err}
}

// publish records s and, when it differs from the last one, logs it in
// plain words and calls OnChange.
func (m *Mapper) publish(s Status) {
	m.mu.Lock()
	old := m.status
	m.status = s
	m.mu.Unlock()
	if old.same(s) {
		return
	}
	var np *NotPublicError
	switch {
	case s.Mapped():
		lease := "permanent, removed on exit"
		if s.Lease > 0 {
			lease = fmt.Sprintf("%v, renewed every %v", s.Lease, s.Lease/2)
		}
		m.log.Info("router forwards the share's port", "router", s.Router, "external", s.External, "internal", s.Internal, "lease", lease)
	case errors.As(s.Err, &np):
		// The advice is for a person; the record says the same for
		// scripts and tests ("wan" only when the router reports one).
		attrs := []any{"router", s.Router}
		if np.IP.IsValid() {
			attrs = append(attrs, "wan", np.IP.String())
		}
		m.log.Info("the router's internet address is not public: no port mapping on it makes the share reachable", attrs...)
		m.warn(np.Advice())
	case s.Err != nil && !errors.Is(s.Err, ErrStopped):
		m.warn("UPnP port mapping failed: " + s.Err.Error())
	}
	if m.opts.OnChange != nil {
		m.opts.OnChange(s)
	}
}

func (m *Mapper) warn(text string) {
	if m.opts.Warn != nil {
		m.opts.Warn(text)
		return
	}
	m.log.Warn(text)
}

// alternativePorts are the external ports tried when the wanted one is
// taken and the router cannot pick one itself. They depend only on our LAN
// address and the port, so the same computer asks for the same ports on
// every run (peers that remember an address keep reaching it).
func alternativePorts(local netip.Addr, want uint16) []uint16 {
	out := make([]uint16, 0, alternatives)
	for i := 0; len(out) < alternatives && i < 100; i++ {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s/%d/%d", local, want, i)
		p := uint16(1024 + h.Sum32()%(65536-1024))
		if p != want && !containsPort(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func containsPort(ps []uint16, p uint16) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
