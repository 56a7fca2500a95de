package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
)

// Device is one port-mapping service of an internet gateway. The goupnp
// clients for WANIPConnection:2, WANIPConnection:1 and WANPPPConnection:1
// implement it through one adapter; tests may supply their own.
type Device interface {
	// ID names the service and its control URL, for logs.
	ID() string
	// Router is the gateway's LAN host, for display ("192.168.1.1").
	Router() string
	// LocalIP is this computer's address on the router's LAN: the
	// InternalClient of every mapping.
	LocalIP() netip.Addr
	// AddPortMapping forwards TCP external → LocalIP():internal for lease
	// (0 asks for a permanent mapping).
	AddPortMapping(ctx context.Context, external, internal uint16, desc string, lease time.Duration) error
	// AddAnyPortMapping lets the router choose a free external port near
	// the wanted one and returns it. Only IGDv2 has it; others return
	// errors.ErrUnsupported.
	AddAnyPortMapping(ctx context.Context, external, internal uint16, desc string, lease time.Duration) (uint16, error)
	// DeletePortMapping removes the TCP mapping of external.
	DeletePortMapping(ctx context.Context, external uint16) error
	// ExternalIP is the router's WAN address as the router reports it;
	// the zero Addr when the router says it has none.
	ExternalIP(ctx context.Context) (netip.Addr, error)
	// PortMapping reports where the TCP mapping of external points to.
	PortMapping(ctx context.Context, external uint16) (client netip.Addr, internal uint16, err error)
}

// igdClient is what the three goupnp service clients have in common.
type igdClient interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error)
	GetServiceClient() *goupnp.ServiceClient
}

// anyPortClient is the IGDv2 extra.
type anyPortClient interface {
	AddAnyPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) (uint16, error)
}

// igdDevice adapts a goupnp service client to Device.
type igdDevice struct {
	c       igdClient
	service string // "WANIPConnection:2", …
	rank    int    // preference when one router offers several services; lower wins
	local   netip.Addr
}

func (d *igdDevice) ID() string {
	return d.service + " at " + d.c.GetServiceClient().SOAPClient.EndpointURL.String()
}

func (d *igdDevice) Router() string {
	return d.c.GetServiceClient().SOAPClient.EndpointURL.Hostname()
}

func (d *igdDevice) LocalIP() netip.Addr { return d.local }

func (d *igdDevice) AddPortMapping(ctx context.Context, external, internal uint16, desc string, lease time.Duration) error {
	return d.c.AddPortMappingCtx(ctx, "", external, "TCP", internal, d.local.String(), true, desc, leaseSeconds(lease))
}

func (d *igdDevice) AddAnyPortMapping(ctx context.Context, external, internal uint16, desc string, lease time.Duration) (uint16, error) {
	a, ok := d.c.(anyPortClient)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	return a.AddAnyPortMappingCtx(ctx, "", external, "TCP", internal, d.local.String(), true, desc, leaseSeconds(lease))
}

func (d *igdDevice) DeletePortMapping(ctx context.Context, external uint16) error {
	return d.c.DeletePortMappingCtx(ctx, "", external, "TCP")
}

func (d *igdDevice) ExternalIP(ctx context.Context) (netip.Addr, error) {
	s, err := d.c.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	if s == "" || s == "0.0.0.0" {
		// miniupnpd (and others) hide a private WAN address this way.
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("router reported external address %q: %w", s, err)
	}
	return ip.Unmap(), nil
}

func (d *igdDevice) PortMapping(ctx context.Context, external uint16) (netip.Addr, uint16, error) {
	internal, client, _, _, _, err := d.c.GetSpecificPortMappingEntryCtx(ctx, "", external, "TCP")
	if err != nil {
		return netip.Addr{}, 0, err
	}
	ip, _ := netip.ParseAddr(client)
	return ip.Unmap(), internal, nil
}

func leaseSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(s)
}

// Discover searches the LAN for internet gateways offering WANIPConnection:2,
// WANIPConnection:1 or WANPPPConnection:1, all three in parallel (SSDP waits
// about 2 s per search), and gives up after timeout. It returns one Device
// per router, preferring IGDv2, then WANIPConnection:1, then PPP. No router
// is ErrNoRouter.
func Discover(ctx context.Context, timeout time.Duration) ([]Device, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type result struct {
		devs []*igdDevice
		errs []error
	}
	searches := []func(context.Context) result{
		func(ctx context.Context) result {
			cs, errs, err := internetgateway2.NewWANIPConnection2ClientsCtx(ctx)
			r := result{errs: append(errs, err)}
			for _, c := range cs {
				r.devs = append(r.devs, &igdDevice{c: c, service: "WANIPConnection:2", rank: 0})
			}
			return r
		},
		func(ctx context.Context) result {
			cs, errs, err := internetgateway2.NewWANIPConnection1ClientsCtx(ctx)
			r := result{errs: append(errs, err)}
			for _, c := range cs {
				r.devs = append(r.devs, &igdDevice{c: c, service: "WANIPConnection:1", rank: 1})
			}
			return r
		},
		func(ctx context.Context) result {
			cs, errs, err := internetgateway2.NewWANPPPConnection1ClientsCtx(ctx)
			r := result{errs: append(errs, err)}
			for _, c := range cs {
				r.devs = append(r.devs, &igdDevice{c: c, service: "WANPPPConnection:1", rank: 2})
			}
			return r
		},
	}
	results := make([]result, len(searches))
	var wg sync.WaitGroup
	for i, search := range searches {
		wg.Go(func() { results[i] = search(ctx) })
	}
	wg.Wait()

	// One device per router: the best-ranked service of each root device.
	best := map[string]*igdDevice{}
	var errs []error
	for _, r := range results {
		for _, e := range r.errs {
			if e != nil {
				errs = append(errs, e)
			}
		}
		for _, d := range r.devs {
			sc := d.c.GetServiceClient()
			key := sc.Location.String()
			if cur, ok := best[key]; ok && cur.rank <= d.rank {
				continue
			}
			d.local = localAddrFor(sc)
			if !d.local.IsValid() {
				errs = append(errs, fmt.Errorf("%s: cannot tell this computer's address on the router's network", d.ID()))
				continue
			}
			best[key] = d
		}
	}
	if len(best) == 0 {
		if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &NoRouterError{Details: errors.Join(errs...)}
	}
	out := make([]*igdDevice, 0, len(best))
	for _, d := range best {
		out = append(out, d)
	}
	// Deterministic: by preference, then by URL.
	sort.Slice(out, func(i, j int) bool {
		if out[i].rank != out[j].rank {
			return out[i].rank < out[j].rank
		}
		return out[i].ID() < out[j].ID()
	})
	devs := make([]Device, len(out))
	for i, d := range out {
		devs[i] = d
	}
	return devs, nil
}

// localAddrFor finds our address on the router's network. goupnp records
// the interface address the SSDP answer came in on; when it does not, ask
// the kernel which source address it would use to reach the router.
func localAddrFor(sc *goupnp.ServiceClient) netip.Addr {
	if ip, ok := netip.AddrFromSlice(sc.LocalAddr()); ok && ip.Unmap().Is4() && !ip.IsUnspecified() {
		return ip.Unmap()
	}
	u := sc.SOAPClient.EndpointURL
	return routeSource(&u)
}

func routeSource(u *url.URL) netip.Addr {
	port := u.Port()
	if port == "" {
		port = "80"
	}
	// UDP "connect" sends nothing; it only picks a route and source address.
	c, err := net.Dial("udp4", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
