package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackpal/gateway"
	natpmp "github.com/jackpal/go-nat-pmp"
)

// natpmpTimeout bounds one NAT-PMP request with its retries. The library
// retries from 250 ms on; a router that speaks NAT-PMP answers the first.
const natpmpTimeout = 2 * time.Second

// natpmpDevice is a router that speaks NAT-PMP (RFC 6886), through
// github.com/jackpal/go-nat-pmp. NAT-PMP keys a mapping on the internal
// port: asking again for the same internal port refreshes it, lifetime 0
// deletes it. It has no query for one mapping; the mapper re-adds instead.
type natpmpDevice struct {
	c     *natpmp.Client
	gw    netip.Addr
	local netip.Addr

	mu       sync.Mutex
	internal uint16 // internal port of our mapping, for DeletePortMapping
}

func (d *natpmpDevice) ID() string          { return "NAT-PMP at " + d.gw.String() }
func (d *natpmpDevice) Router() string      { return d.gw.String() }
func (d *natpmpDevice) LocalIP() netip.Addr { return d.local }

// AddPortMapping asks for external; a router that hands out another port
// keeps that mapping and answers with the UPnP conflict code, so the mapper
// goes on to AddAnyPortMapping, which reports the port the router chose.
func (d *natpmpDevice) AddPortMapping(ctx context.Context, external, internal uint16, _ string, lease time.Duration) error {
	got, err := d.AddAnyPortMapping(ctx, external, internal, "", lease)
	if err != nil {
		return err
	}
	if got != external {
		return &codedError{code: codeConflict, msg: fmt.Sprintf("NAT-PMP router mapped external port %d instead of %d", got, external)}
	}
	return nil
}

func (d *natpmpDevice) AddAnyPortMapping(ctx context.Context, external, internal uint16, _ string, lease time.Duration) (uint16, error) {
	if lease <= 0 {
		// NAT-PMP has no permanent mappings; lifetime 0 means delete.
		lease = DefaultLease
	}
	r, err := natpmpCall(ctx, func() (*natpmp.AddPortMappingResult, error) {
		return d.c.AddPortMapping("tcp", int(internal), int(external), int(leaseSeconds(lease)))
	})
	if err != nil {
		return 0, natpmpError(err)
	}
	d.mu.Lock()
	d.internal = internal
	d.mu.Unlock()
	return r.MappedExternalPort, nil
}

func (d *natpmpDevice) DeletePortMapping(ctx context.Context, _ uint16) error {
	d.mu.Lock()
	internal := d.internal
	d.mu.Unlock()
	if internal == 0 {
		return &codedError{code: codeNoSuchEntry, msg: "no NAT-PMP mapping was made"}
	}
	_, err := natpmpCall(ctx, func() (*natpmp.AddPortMappingResult, error) {
		return d.c.AddPortMapping("tcp", int(internal), 0, 0)
	})
	return natpmpError(err)
}

func (d *natpmpDevice) ExternalIP(ctx context.Context) (netip.Addr, error) {
	r, err := natpmpCall(ctx, d.c.GetExternalAddress)
	if err != nil {
		return netip.Addr{}, natpmpError(err)
	}
	ip := netip.AddrFrom4(r.ExternalIPAddress)
	if ip.IsUnspecified() {
		return netip.Addr{}, nil
	}
	return ip, nil
}

func (d *natpmpDevice) PortMapping(context.Context, uint16) (netip.Addr, uint16, error) {
	return netip.Addr{}, 0, errors.ErrUnsupported
}

// natpmpCall runs a blocking library call (bounded by natpmpTimeout) and
// gives up waiting when ctx ends first.
func natpmpCall[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// natpmpError gives NAT-PMP's "not authorized" result (code 2) the UPnP
// code the mapper already handles.
func natpmpError(err error) error {
	if err != nil && strings.Contains(err.Error(), "result code 2 ") {
		return &codedError{code: codeNotAuthorized, msg: err.Error()}
	}
	return err
}

// codedError carries a UPnP error code for a failure that was not a SOAP
// fault (NAT-PMP), so that upnpCode treats both protocols alike.
type codedError struct {
	code int
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// DiscoverNATPMP asks the default gateway for its external address over
// NAT-PMP. No answer within timeout is a NoRouterError.
func DiscoverNATPMP(ctx context.Context, timeout time.Duration) ([]Device, error) {
	gwIP, err := gateway.DiscoverGateway()
	if err != nil {
		return nil, &NoRouterError{Details: fmt.Errorf("find the default gateway: %w", err)}
	}
	gw, ok := netip.AddrFromSlice(gwIP)
	if !ok || !gw.Unmap().Is4() {
		return nil, &NoRouterError{Details: fmt.Errorf("default gateway %v is not IPv4", gwIP)}
	}
	gw = gw.Unmap()
	local := routeSourceUDP(netip.AddrPortFrom(gw, 5351))
	if !local.IsValid() {
		return nil, &NoRouterError{Details: fmt.Errorf("no route to the gateway %s", gw)}
	}
	d := &natpmpDevice{c: natpmp.NewClientWithTimeout(gw.AsSlice(), min(timeout, natpmpTimeout)), gw: gw, local: local}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := d.ExternalIP(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &NoRouterError{Details: fmt.Errorf("NAT-PMP at %s: %w", gw, err)}
	}
	return []Device{d}, nil
}

func routeSourceUDP(ap netip.AddrPort) netip.Addr {
	c, err := net.Dial("udp4", ap.String())
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	got, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return got.Addr().Unmap()
}

// DiscoverAny searches for UPnP IGD and NAT-PMP routers at once and
// prefers UPnP (it can report a mapping; NAT-PMP cannot). It is the
// mapper's default.
func DiscoverAny(ctx context.Context, timeout time.Duration) ([]Device, error) {
	var (
		wg              sync.WaitGroup
		upnp, pmp       []Device
		upnpErr, pmpErr error
	)
	wg.Go(func() { upnp, upnpErr = Discover(ctx, timeout) })
	wg.Go(func() { pmp, pmpErr = DiscoverNATPMP(ctx, timeout) })
	wg.Wait()
	if devs := append(upnp, pmp...); len(devs) > 0 {
		return devs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, &NoRouterError{Details: errors.Join(upnpErr, pmpErr)}
}
