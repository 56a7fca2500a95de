//go:build linux

package portmap_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestNATPMPRouter: a router with UPnP off and NAT-PMP on (miniupnpd,
// enable_upnp=no). The share is mapped through NAT-PMP, reachable from the
// internet, renewed across several leases, and removed on SIGTERM; a
// killed share's mapping expires with its lease (which is what makes the
// renewal check mean something).
func TestNATPMPRouter(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{NATPMPOnly: true})
	host := home.AddHost(t)
	home.StartRouter(t)

	const lease = 4 * time.Second
	d := startDemo(t, host, "-lease", lease.String(), "-banner", "hello-natpmp")
	want := fmt.Sprintf("%s:%d", home.WAN(), d.port)
	d.waitAddrs(t, 20*time.Second, "the external address through NAT-PMP", func(as []string) bool { return contains(as, want) })
	if !strings.Contains(d.Output.String(), "NAT-PMP at "+home.RouterLAN.String()) {
		t.Errorf("expected the NAT-PMP router to be used:\n%s", d.Output)
	}
	fw := fmt.Sprintf("%d->%s:%d", d.port, host.Addr, d.port)
	if got, ok := mapped(t, home, fw); !ok {
		t.Fatalf("router forwards %q; want %s", got, fw)
	}
	if line, err := dialFrom(in.NS, want); err != nil || line != "hello-natpmp" {
		t.Fatalf("from the internet, %s answered %q (%v); want the share's banner", want, line, err)
	}
	for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 4) {
		if got, ok := mapped(t, home, fw); !ok {
			t.Fatalf("our NAT-PMP mapping disappeared; lease %v was not renewed: %q", lease, got)
		}
	}
	d.stop(t)
	if got := home.Forwards(t); slices.Contains(got, fw) {
		t.Fatalf("mapping still on the router after SIGTERM: %q", got)
	}
	if !strings.Contains(d.Output.String(), "removed port mapping") {
		t.Errorf("no log line about removing the mapping:\n%s", d.Output)
	}

	// Killed: nobody renews or deletes; the router drops it with the lease.
	k := startDemo(t, host, "-lease", lease.String())
	kfw := fmt.Sprintf("%d->%s:%d", k.port, host.Addr, k.port)
	k.waitAddrs(t, 20*time.Second, "the second mapping", func(as []string) bool {
		return contains(as, fmt.Sprintf("%s:%d", home.WAN(), k.port))
	})
	if err := k.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	k.Wait(5 * time.Second)
	testenv.WaitFor(t, 6*lease, "the unrenewed NAT-PMP mapping to expire", func() bool {
		return !slices.Contains(home.Forwards(t), kfw)
	})
}

// mapped reports whether the router forwards fw, looking again for up to
// a second when it does not: miniupnpd renews a NAT-PMP mapping by
// deleting its rule and adding it again (natpmp.c, "already redirected
// ..., replacing"), and a busy router can be caught in between.
func mapped(t *testing.T, home *testenv.Home, fw string) ([]string, bool) {
	t.Helper()
	var got []string
	for end := time.Now().Add(time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = home.Forwards(t)
		if slices.Contains(got, fw) || time.Now().After(end) {
			return got, slices.Contains(got, fw)
		}
	}
}
