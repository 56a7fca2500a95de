package portmap

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huin/goupnp/soap"
)

func TestIsPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"198.20.113.1":   true,
		"8.8.8.8":        true,
		"2a00:1450::1":   true,
		"10.1.2.3":       false,
		"172.16.0.1":     false,
		"172.31.255.255": false,
		"172.32.0.1":     true,
		"192.168.1.1":    false,
		"100.64.0.1":     false,
		"100.127.255.1":  false,
		"100.128.0.1":    true,
		"127.0.0.1":      false,
		"169.254.1.1":    false,
		"203.0.113.5":    false,
		"0.0.0.0":        false,
		"fd00::1":        false,
		"fe80::1":        false,
	} {
		if got := IsPublic(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", s, got, want)
		}
	}
	if IsPublic(netip.Addr{}) {
		t.Error("IsPublic(zero Addr) = true")
	}
}

func TestAlternativePorts(t *testing.T) {
	ip := netip.MustParseAddr("192.168.1.20")
	a, b := alternativePorts(ip, 2222), alternativePorts(ip, 2222)
	if len(a) != alternatives {
		t.Fatalf("got %d alternatives, want %d", len(a), alternatives)
	}
	seen := map[uint16]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("alternatives differ between calls: %v vs %v", a, b)
		}
		if a[i] < 1024 || a[i] == 2222 || seen[a[i]] {
			t.Fatalf("bad alternative list %v", a)
		}
		seen[a[i]] = true
	}
	if other := alternativePorts(netip.MustParseAddr("192.168.1.21"), 2222); other[0] == a[0] && other[1] == a[1] {
		t.Errorf("two LAN hosts got the same alternatives %v", a)
	}
}

// scriptedRouter is a Device whose answers the test decides. miniupnpd
// never answers 725 (OnlyPermanentLeasesSupported) or 401, which some
// consumer routers do; this covers the mapper's reaction to them. Every
// other router behaviour is tested against the real miniupnpd
// (router_test.go).
type scriptedRouter struct {
	mu       sync.Mutex
	addErr   func(lease time.Duration) error
	mappings map[uint16]time.Duration // external port → lease
	deleted  []uint16
}

func fault(code int, desc string) error {
	f := &soap.SOAPFaultError{FaultCode: "s:Client", FaultString: "UPnPError"}
	f.Detail.UPnPError.Errorcode = code
	f.Detail.UPnPError.ErrorDescription = desc
	return f
}

func (r *scriptedRouter) ID() string          { return "scripted" }
func (r *scriptedRouter) Router() string      { return "192.168.9.1" }
func (r *scriptedRouter) LocalIP() netip.Addr { return netip.MustParseAddr("192.168.9.2") }
func (r *scriptedRouter) AddPortMapping(ctx context.Context, external, internal uint16, desc string, lease time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.addErr(lease); err != nil {
		return err
	}
	r.mappings[external] = lease
	return nil
}
func (r *scriptedRouter) AddAnyPortMapping(context.Context, uint16, uint16, string, time.Duration) (uint16, error) {
	return 0, errors.ErrUnsupported
}
func (r *scriptedRouter) DeletePortMapping(ctx context.Context, external uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, external)
	delete(r.mappings, external)
	return nil
}
func (r *scriptedRouter) ExternalIP(context.Context) (netip.Addr, error) {
	return netip.MustParseAddr("198.20.9.1"), nil
}
func (r *scriptedRouter) PortMapping(ctx context.Context, external uint16) (netip.Addr, uint16, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.mappings[external]; !ok {
		return netip.Addr{}, 0, fault(codeNoSuchEntry, "NoSuchEntryInArray")
	}
	return r.LocalIP(), external, nil
}

func runScripted(t *testing.T, r *scriptedRouter) (Status, []string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		warnings []string
	)
	changed := make(chan Status, 10)
	m := New(Options{
		InternalPort: 2222,
		Discover: func(context.Context, time.Duration) ([]Device, error) {
			return []Device{r}, nil
		},
		Warn: func(s string) {
			mu.Lock()
			warnings = append(warnings, s)
			mu.Unlock()
		},
		OnChange: func(s Status) { changed <- s },
	})
	done := make(chan struct{})
	go func() {
		_ = m.Run(ctx)
		close(done)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return 10 s after cancel")
		}
	}
	select {
	case s := <-changed:
		mu.Lock()
		defer mu.Unlock()
		return s, append([]string(nil), warnings...), stop
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("no status within 10 s")
	}
	return Status{}, nil, stop
}

// TestOnlyPermanentLeases: a router answering 725 to a leased mapping gets
// a permanent one, which is deleted when the run ends.
func TestOnlyPermanentLeases(t *testing.T) {
	r := &scriptedRouter{mappings: map[uint16]time.Duration{}, addErr: func(lease time.Duration) error {
		if lease != 0 {
			return fault(codeOnlyPermanentLeases, "OnlyPermanentLeasesSupported")
		}
		return nil
	}}
	s, _, stop := runScripted(t, r)
	if !s.Mapped() || s.External != netip.MustParseAddrPort("198.20.9.1:2222") || s.Lease != 0 {
		t.Fatalf("status %+v; want 198.20.9.1:2222 mapped permanently", s)
	}
	r.mu.Lock()
	lease, ok := r.mappings[2222]
	r.mu.Unlock()
	if !ok || lease != 0 {
		t.Fatalf("router mappings %v; want 2222 with lease 0", r.mappings)
	}
	stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mappings) != 0 || len(r.deleted) != 1 || r.deleted[0] != 2222 {
		t.Fatalf("after the run: mappings %v, deleted %v; want the permanent mapping deleted", r.mappings, r.deleted)
	}
}

// TestNotAuthorizedCodes: 606 and 401 both mean "not allowed" and are
// explained as such, with no mapping.
func TestNotAuthorizedCodes(t *testing.T) {
	for _, code := range []int{606, 401} {
		r := &scriptedRouter{mappings: map[uint16]time.Duration{}, addErr: func(time.Duration) error {
			return fault(code, "Action not authorized")
		}}
		s, warnings, stop := runScripted(t, r)
		stop()
		var na *NotAuthorizedError
		if s.Mapped() || !errors.As(s.Err, &na) || na.Code != code {
			t.Fatalf("code %d: status %+v; want NotAuthorizedError", code, s)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "not authorized") || !strings.Contains(warnings[0], "--advertise") {
			t.Fatalf("code %d: warnings %q", code, warnings)
		}
	}
}
