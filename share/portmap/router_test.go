//go:build linux

package portmap_test

// Tests against a real UPnP router: miniupnpd (nftables) in a network
// namespace, the stand-in share (testdata/portmaptest) on a LAN host
// behind it, and clients on the "internet" namespace. See testenv/netns.go.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

const demoPkg = "./testdata/portmaptest"

// demo is one run of portmaptest on a LAN host.
type demo struct {
	*testenv.Process
	port int
}

func startDemo(t *testing.T, host *testenv.Host, args ...string) *demo {
	t.Helper()
	bin := testenv.BuildProgram(t, demoPkg)
	p := testenv.StartIn(t, host.NS, nil, bin, args...)
	p.WaitOutput(t, "LISTEN ", 10*time.Second)
	m := regexp.MustCompile(`LISTEN (\d+)`).FindStringSubmatch(p.Output.String())
	port, _ := strconv.Atoi(m[1])
	return &demo{Process: p, port: port}
}

// addrsLines returns the advertised-address lists printed so far.
func (d *demo) addrsLines() [][]string {
	var out [][]string
	for _, l := range strings.Split(d.Output.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "ADDRS"); ok {
			out = append(out, strings.Fields(rest))
		}
	}
	return out
}

// waitAddrs waits until the latest advertised list satisfies ok.
func (d *demo) waitAddrs(t *testing.T, timeout time.Duration, what string, ok func([]string) bool) []string {
	t.Helper()
	var last []string
	testenv.WaitFor(t, timeout, what, func() bool {
		ls := d.addrsLines()
		if len(ls) == 0 {
			return false
		}
		last = ls[len(ls)-1]
		return ok(last)
	})
	return last
}

// stop sends SIGTERM and waits for a clean exit.
func (d *demo) stop(t *testing.T) {
	t.Helper()
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err, ok := d.Wait(15 * time.Second)
	if !ok {
		t.Fatalf("portmaptest still running 15 s after SIGTERM:\n%s", d.Output)
	}
	if err != nil {
		t.Fatalf("portmaptest exited with %v:\n%s", err, d.Output)
	}
	if !strings.Contains(d.Output.String(), "EXIT") {
		t.Fatalf("portmaptest did not finish cleanly:\n%s", d.Output)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dialFrom connects from namespace ns to addr and returns the first line
// the server sent (bash's /dev/tcp: no extra tool needed).
func dialFrom(ns, addr string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	out, err := testenv.RunIn(ns, 10*time.Second, "timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && head -n1 <&3", host, port))
	return strings.TrimSpace(out), err
}

// mappingTo finds the router's TCP mapping to host:port, as `upnpc -l`
// shows it, and returns its external port (0 when there is none).
func mappingTo(t *testing.T, home *testenv.Home, host *testenv.Host, port int) int {
	t.Helper()
	re := regexp.MustCompile(`^\d+ TCP (\d+)->` + regexp.QuoteMeta(fmt.Sprintf("%s:%d", host.Addr, port)) + ` 'dsftp'`)
	for _, l := range home.Mappings(t, host) {
		if m := re.FindStringSubmatch(l); m != nil {
			p, _ := strconv.Atoi(m[1])
			return p
		}
	}
	return 0
}

// TestMapRenewDelete is the main path: the router forwards the port, a
// client on the internet reaches the share through the external address,
// the lease is renewed before it runs out, and SIGTERM removes the mapping.
func TestMapRenewDelete(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)
	other := home.AddHost(t)
	home.StartRouter(t)

	const lease = 4 * time.Second
	start := time.Now()
	d := startDemo(t, host, "-lease", lease.String(), "-banner", "hello-from-lan")
	want := fmt.Sprintf("%s:%d", home.WAN(), d.port)
	got := d.waitAddrs(t, 20*time.Second, "the external address to be advertised", func(as []string) bool { return contains(as, want) })
	t.Logf("external mapping %s advertised %v after start", want, time.Since(start).Round(time.Millisecond))
	if lan := fmt.Sprintf("%s:%d", host.Addr, d.port); !contains(got, lan) {
		t.Errorf("advertised %v: want the LAN address %s too", got, lan)
	}
	if ext := mappingTo(t, home, host, d.port); ext != d.port {
		t.Fatalf("upnpc -l: want a mapping %d->%s:%d, got %q", d.port, host.Addr, d.port, home.Mappings(t, host))
	}
	if line, err := dialFrom(in.NS, want); err != nil || line != "hello-from-lan" {
		t.Fatalf("from the internet, %s answered %q (%v); want the share's banner", want, line, err)
	}

	// Renewal: a mapping with the same lease that nobody renews (made by
	// another LAN host with upnpc) expires; ours must outlive several
	// leases.
	ctlPort := strconv.Itoa(d.port + 1)
	testenv.MustRunIn(t, other.NS, "upnpc", "-u", home.RootDescURL(), "-e", "control", "-a", other.Addr.String(), ctlPort, ctlPort, "TCP", strconv.Itoa(int(lease/time.Second)))
	controlGone := false
	deadline := time.Now().Add(4 * lease)
	for time.Now().Before(deadline) {
		time.Sleep(lease / 4)
		ms := strings.Join(home.Mappings(t, host), "\n")
		if !strings.Contains(ms, "'control'") {
			controlGone = true
		}
		if mappingTo(t, home, host, d.port) == 0 {
			t.Fatalf("our mapping disappeared after %v; lease %v was not renewed:\n%s", time.Since(start), lease, ms)
		}
	}
	if !controlGone {
		t.Fatalf("the unrenewed control mapping did not expire within %v; the renewal check proves nothing", 4*lease)
	}
	if line, err := dialFrom(in.NS, want); err != nil || line != "hello-from-lan" {
		t.Fatalf("after renewals, %s answered %q (%v)", want, line, err)
	}

	d.stop(t)
	if ext := mappingTo(t, home, host, d.port); ext != 0 {
		t.Fatalf("mapping still on the router after SIGTERM: %q", home.Mappings(t, host))
	}
	if !strings.Contains(d.Output.String(), "removed port mapping") {
		t.Errorf("no log line about removing the mapping:\n%s", d.Output)
	}
}

// TestIGDv1Router: a router that only describes itself as IGDv1 is found
// through WANIPConnection:1 and maps the port.
func TestIGDv1Router(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{IGDv1: true})
	host := home.AddHost(t)
	home.StartRouter(t)

	d := startDemo(t, host)
	want := fmt.Sprintf("%s:%d", home.WAN(), d.port)
	d.waitAddrs(t, 20*time.Second, "the external address from an IGDv1 router", func(as []string) bool { return contains(as, want) })
	if !strings.Contains(d.Output.String(), "WANIPConnection:1") {
		t.Errorf("expected the WANIPConnection:1 service to be used:\n%s", d.Output)
	}
	if line, err := dialFrom(in.NS, want); err != nil || line != "portmaptest" {
		t.Fatalf("from the internet, %s answered %q (%v)", want, line, err)
	}
	d.stop(t)
	if ext := mappingTo(t, home, host, d.port); ext != 0 {
		t.Fatalf("mapping still on the router after SIGTERM: %q", home.Mappings(t, host))
	}
}

// TestCGNATRouter: a router whose own WAN address is carrier-grade NAT
// gives a plain-words warning and no external address.
func TestCGNATRouter(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{WAN: "100.64.113.1/24"})
	host := home.AddHost(t)
	home.StartRouter(t)

	d := startDemo(t, host)
	d.WaitOutput(t, "carrier-grade NAT", 20*time.Second)
	out := d.Output.String()
	for _, want := range []string{"cannot connect to this share", "You can still mount", "IPv6", "--advertise"} {
		if !strings.Contains(out, want) {
			t.Errorf("CGNAT warning lacks %q:\n%s", want, out)
		}
	}
	for _, as := range d.addrsLines() {
		for _, a := range as {
			if strings.HasPrefix(a, "100.64.") {
				t.Errorf("advertised the CGNAT address %s", a)
			}
		}
	}
	if ls := d.addrsLines(); len(ls) == 0 || !contains(ls[len(ls)-1], fmt.Sprintf("%s:%d", host.Addr, d.port)) {
		t.Errorf("want the LAN address still advertised; got %v", ls)
	}
	if ms := home.Mappings(t, host); len(ms) != 0 {
		t.Errorf("no mapping expected behind CGNAT, router has %q", ms)
	}
	d.stop(t)
}

// TestPortTaken: another LAN host already holds the external port, so the
// router answers 718 and the share gets another external port, on IGDv2
// (AddAnyPortMapping) and on IGDv1 (deterministic alternatives).
func TestPortTaken(t *testing.T) {
	t.Parallel()
	for _, v1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("IGDv1=%v", v1), func(t *testing.T) {
			t.Parallel()
			in := testenv.NewInternet(t)
			home := in.NewHome(t, testenv.HomeOptions{IGDv1: v1})
			host := home.AddHost(t)
			squatter := home.AddHost(t)
			home.StartRouter(t)

			port := "24242" // each host namespace is fresh, so the port is free
			testenv.MustRunIn(t, squatter.NS, "upnpc", "-u", home.RootDescURL(), "-e", "squatter", "-a", squatter.Addr.String(), port, port, "TCP", "600")
			d := startDemo(t, host, "-port", port)
			as := d.waitAddrs(t, 25*time.Second, "some external address", func(as []string) bool {
				for _, a := range as {
					if strings.HasPrefix(a, home.WAN().String()+":") {
						return true
					}
				}
				return false
			})
			var ext string
			for _, a := range as {
				if strings.HasPrefix(a, home.WAN().String()+":") {
					ext = a
				}
			}
			if strings.HasSuffix(ext, ":"+port) {
				t.Fatalf("advertised %s, but that external port belongs to another host", ext)
			}
			if p := mappingTo(t, home, host, d.port); p == 0 || !strings.HasSuffix(ext, ":"+strconv.Itoa(p)) {
				t.Fatalf("advertised %s; router mappings: %q", ext, home.Mappings(t, host))
			}
			if line, err := dialFrom(in.NS, ext); err != nil || line != "portmaptest" {
				t.Fatalf("from the internet, %s answered %q (%v)", ext, line, err)
			}
			d.stop(t)
			if p := mappingTo(t, home, host, d.port); p != 0 {
				t.Fatalf("mapping still on the router after SIGTERM: %q", home.Mappings(t, host))
			}
			if ms := strings.Join(home.Mappings(t, host), "\n"); !strings.Contains(ms, "'squatter'") {
				t.Fatalf("the other host's mapping was touched:\n%s", ms)
			}
		})
	}
}

// TestNotAuthorized: the router's rules forbid mapping (UPnP 606); the
// share says so and advertises only its LAN address.
func TestNotAuthorized(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{Rules: []string{"deny 0-65535 0.0.0.0/0 0-65535"}})
	host := home.AddHost(t)
	home.StartRouter(t)

	d := startDemo(t, host)
	d.WaitOutput(t, "not authorized", 20*time.Second)
	if !strings.Contains(d.Output.String(), "--advertise") {
		t.Errorf("the refusal should name the way out (--advertise):\n%s", d.Output)
	}
	ls := d.addrsLines()
	if len(ls) == 0 {
		t.Fatalf("nothing advertised:\n%s", d.Output)
	}
	if last := ls[len(ls)-1]; len(last) != 1 || last[0] != fmt.Sprintf("%s:%d", host.Addr, d.port) {
		t.Errorf("advertised %v; want only the LAN address", last)
	}
	d.stop(t)
}

// TestNoRouter: no UPnP on the LAN (miniupnpd not running): the share says
// so within the discovery bound, advertises its LAN address and still
// stops promptly.
func TestNoRouter(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)

	start := time.Now()
	d := startDemo(t, host)
	d.WaitOutput(t, "no UPnP or NAT-PMP router found", 20*time.Second)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("took %v to give up on UPnP; discovery must be bounded", took)
	}
	if ls := d.addrsLines(); len(ls) == 0 || !contains(ls[len(ls)-1], fmt.Sprintf("%s:%d", host.Addr, d.port)) {
		t.Errorf("want the LAN address advertised; got %v", ls)
	}
	d.stop(t)
}

// TestRouterChanges: the external address changes, the router loses the
// mapping, and the router reboots with a new address: each time the share
// maps again and advertises the new external address.
func TestRouterChanges(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)
	home.StartRouter(t)

	// A long lease with frequent checks: changes are noticed by checking,
	// not by renewing.
	d := startDemo(t, host, "-lease", "1h", "-check", "2s")
	ext := func() string { return fmt.Sprintf("%s:%d", home.WAN(), d.port) }
	d.waitAddrs(t, 20*time.Second, "the first external address", func(as []string) bool { return contains(as, ext()) })

	// 1. The provider hands the router a new address.
	old := ext()
	home.SetWAN(t, "198.20.113.41/24")
	d.waitAddrs(t, 20*time.Second, "the new external address after an IP change", func(as []string) bool {
		return contains(as, ext()) && !contains(as, old)
	})
	if line, err := dialFrom(in.NS, ext()); err != nil || line != "portmaptest" {
		t.Fatalf("after the IP change, %s answered %q (%v)", ext(), line, err)
	}

	// 2. The mapping vanishes from the router (deleted behind our back).
	if out := testenv.MustRunIn(t, host.NS, "upnpc", "-u", home.RootDescURL(), "-d", strconv.Itoa(d.port), "TCP"); !strings.Contains(out, "returned : 0") {
		t.Fatalf("upnpc -d did not remove the mapping:\n%s", out)
	}
	d.WaitOutput(t, "lost our port mapping", 20*time.Second)
	testenv.WaitFor(t, 20*time.Second, "the lost mapping to be restored", func() bool {
		return mappingTo(t, home, host, d.port) == d.port
	})

	// 3. The router reboots: it forgets all mappings and comes back with
	// another address.
	old = ext()
	home.Reboot(t, "198.20.113.42/24")
	d.waitAddrs(t, 30*time.Second, "the external address after a router reboot", func(as []string) bool {
		return contains(as, ext()) && !contains(as, old)
	})
	testenv.WaitFor(t, 20*time.Second, "the mapping on the rebooted router", func() bool {
		return mappingTo(t, home, host, d.port) == d.port
	})
	if line, err := dialFrom(in.NS, ext()); err != nil || line != "portmaptest" {
		t.Fatalf("after the reboot, %s answered %q (%v)", ext(), line, err)
	}
	d.stop(t)
	if p := mappingTo(t, home, host, d.port); p != 0 {
		t.Fatalf("mapping still on the router after SIGTERM: %q", home.Mappings(t, host))
	}
}

// TestFrozenRouter: the router stops answering (miniupnpd SIGSTOPped) while
// the share runs; stopping the share still finishes promptly, because every
// router call has a deadline, and says the mapping could not be removed.
func TestFrozenRouter(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ss")
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)
	home.StartRouter(t)

	d := startDemo(t, host, "-check", "2s")
	want := fmt.Sprintf("%s:%d", home.WAN(), d.port)
	d.waitAddrs(t, 20*time.Second, "the external address", func(as []string) bool { return contains(as, want) })

	upnpd := home.Miniupnpd().Cmd.Process
	if err := upnpd.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = upnpd.Signal(syscall.SIGCONT) })
	// Let a check run into the frozen router, then stop.
	waitUnreadRequest(t, home)
	start := time.Now()
	d.stop(t) // fails after 15 s
	t.Logf("stopped %v after SIGTERM with a frozen router", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(d.Output.String(), "could not remove port mapping") {
		t.Errorf("expected a note that the mapping could not be removed:\n%s", d.Output)
	}
}

// waitUnreadRequest waits until a request to the router's UPnP port sits
// unread in the kernel: a check has run into the frozen miniupnpd.
func waitUnreadRequest(t *testing.T, home *testenv.Home) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "a request waiting on the frozen router", func() bool {
		out := testenv.MustRunIn(t, home.Router, "ss", "-Htn", "state", "established", "( sport = :5000 )")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] != "0" { // Recv-Q
				return true
			}
		}
		return false
	})
}

// TestRouterActionFailed: a misconfigured router (no firewall chains for
// miniupnpd) answers AddPortMapping with UPnP error 501; the share reports
// the router's error and keeps its LAN address.
func TestRouterActionFailed(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{NoSkeleton: true})
	host := home.AddHost(t)
	home.StartRouter(t)

	d := startDemo(t, host)
	d.WaitOutput(t, "UPnP error 501", 20*time.Second)
	if ls := d.addrsLines(); len(ls) == 0 || strings.Join(ls[len(ls)-1], " ") != fmt.Sprintf("%s:%d", host.Addr, d.port) {
		t.Errorf("advertised %v; want only the LAN address", ls)
	}
	d.stop(t)
}
