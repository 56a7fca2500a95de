//go:build linux

package main

// `dsftp share` behind a real UPnP router: miniupnpd in a network
// namespace (testenv/netns.go), dsftp on a LAN host behind it, and the real
// OpenSSH sftp client on the "internet" side.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// routerShare is `dsftp share` running on a LAN host.
type routerShare struct {
	*testenv.Node
	dir     string
	hostKey testenv.Key
	client  testenv.Key
	port    int
}

func startRouterShare(t *testing.T, host *testenv.Host, extra ...string) *routerShare {
	t.Helper()
	tmp := t.TempDir()
	rs := &routerShare{dir: filepath.Join(tmp, "share")}
	if err := os.MkdirAll(rs.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rs.dir, "hello.txt"), []byte("hello through the router\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs.hostKey = testenv.NewKey(t, tmp, "host_key")
	rs.client = testenv.NewKey(t, tmp, "client")
	auth := filepath.Join(tmp, "authorized_keys")
	if err := os.WriteFile(auth, []byte(rs.client.Public()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"share", rs.dir, "--host-key", rs.hostKey.Path, "--authorized-keys", auth}, extra...)
	rs.Node = testenv.StartNode(t, testenv.NodeOptions{NS: host.NS}, args...)
	rs.port, _ = rs.Node.ShareReady(t)
	return rs
}

// advertised returns the addresses the share advertises now: those of
// its latest "advertised addresses" record.
func (rs *routerShare) advertised() []string {
	l := rs.Records("advertised addresses")
	if len(l) == 0 {
		return nil
	}
	return l[len(l)-1].Strs("addrs")
}

func (rs *routerShare) waitAdvertised(t *testing.T, addr string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "dsftp share to advertise "+addr, func() bool {
		for _, a := range rs.advertised() {
			if a == addr {
				return true
			}
		}
		return false
	})
}

// sftpFrom runs the real OpenSSH sftp in namespace ns against addr,
// verifying the pinned host key, and returns what `get hello.txt` fetched.
func (rs *routerShare) sftpFrom(t *testing.T, ns, host string, port int) (string, error) {
	t.Helper()
	sftp := testenv.Require(t, "sftp")[0]
	work := t.TempDir()
	kh := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(kh, []byte(fmt.Sprintf("[%s]:%d %s\n", host, port, rs.hostKey.Public())), 0o600); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(work, "batch")
	if err := os.WriteFile(batch, []byte("get hello.txt "+filepath.Join(work, "got.txt")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := testenv.RunIn(ns, 60*time.Second, sftp,
		"-F", "/dev/null", "-i", rs.client.Path,
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "-P", fmt.Sprint(port), "-b", batch, "friend@"+host)
	if err != nil {
		return "", fmt.Errorf("sftp: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(work, "got.txt"))
	return string(b), err
}

func (rs *routerShare) terminate(t *testing.T) {
	t.Helper()
	if err := rs.Stop(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("dsftp share exited with %v:\n%s", err, rs.Output)
	}
}

func hasMapping(t *testing.T, home *testenv.Home, host *testenv.Host, port int) bool {
	t.Helper()
	want := fmt.Sprintf("TCP %d->%s:%d 'dsftp'", port, host.Addr, port)
	for _, l := range home.Mappings(t, host) {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}

// TestShareBehindRouter: `dsftp share` maps its port on the router, a
// client on the internet fetches a file through the external address with
// OpenSSH sftp, and SIGTERM removes the mapping. (IGDv1 routers and lease
// renewal are share/portmap's tests.)
func TestShareBehindRouter(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)
	home.StartRouter(t)

	start := time.Now()
	rs := startRouterShare(t, host, "--upnp-lease", "4s")
	ext := fmt.Sprintf("%s:%d", home.WAN(), rs.port)
	rs.waitAdvertised(t, ext)
	t.Logf("external address %s advertised %v after starting dsftp share", ext, time.Since(start).Round(time.Millisecond))
	if as := rs.advertised(); !strings.Contains(strings.Join(as, " "), fmt.Sprintf("%s:%d", host.Addr, rs.port)) {
		t.Errorf("advertised %v: want the LAN address too", as)
	}
	if !hasMapping(t, home, host, rs.port) {
		t.Fatalf("upnpc -l shows no mapping for port %d: %q", rs.port, home.Mappings(t, host))
	}
	got, err := rs.sftpFrom(t, in.NS, home.WAN().String(), rs.port)
	if err != nil || got != "hello through the router\n" {
		t.Fatalf("sftp through %s: got %q, %v", ext, got, err)
	}
	rs.terminate(t)
	if hasMapping(t, home, host, rs.port) {
		t.Fatalf("mapping still on the router after SIGTERM: %q", home.Mappings(t, host))
	}
}

// TestShareBehindCGNAT: the port mapper's warnings reach the user as
// "dsftp: warning:" lines, and only the LAN address is advertised. (What
// the CGNAT warning says is share/portmap's TestCGNATRouter.)
func TestShareBehindCGNAT(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{WAN: "100.64.113.1/24"})
	host := home.AddHost(t)
	home.StartRouter(t)

	rs := startRouterShare(t, host)
	rs.WaitRecord(t, 30*time.Second, "the router's internet address is not public: no port mapping on it makes the share reachable")
	// The warning itself is for the user: its form is the subject here.
	if out := rs.Text(); !strings.Contains(out, "dsftp: warning:") || !strings.Contains(out, "carrier-grade NAT") {
		t.Errorf("the warning is not a dsftp: warning: line:\n%s", rs.Output)
	}
	as := rs.advertised()
	if len(as) != 1 || as[0] != fmt.Sprintf("%s:%d", host.Addr, rs.port) {
		t.Errorf("advertised %v; want only the LAN address", as)
	}
	rs.terminate(t)
}

// TestShareNoUPnPAndAdvertise: --no-upnp sends nothing to the router,
// --advertise values are listed first, then the host's global IPv6 address,
// then its LAN address.
func TestShareNoUPnPAndAdvertise(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	home := in.NewHome(t, testenv.HomeOptions{})
	host := home.AddHost(t)
	testenv.MustRun(t, "ip", "-n", host.NS, "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad")
	home.StartRouter(t)

	rs := startRouterShare(t, host, "--no-upnp", "--advertise", "vps.example.org:2222", "--advertise", "[2001:db8::7]:22")
	testenv.WaitFor(t, 10*time.Second, "the advertised addresses", func() bool { return len(rs.advertised()) == 4 })
	want := []string{"vps.example.org:2222", "[2001:db8::7]:22", fmt.Sprintf("[2001:db8:77::2]:%d", rs.port), fmt.Sprintf("%s:%d", host.Addr, rs.port)}
	if got := rs.advertised(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("advertised %v, want %v", got, want)
	}
	// Give a mapper that wrongly ran time to reach the router.
	time.Sleep(3 * time.Second)
	if ms := home.Mappings(t, host); len(ms) != 0 {
		t.Fatalf("--no-upnp, yet the router has %q", ms)
	}
	if strings.Contains(home.Miniupnpd().Output.String(), "AddPortMapping") {
		t.Fatalf("--no-upnp, yet the router saw AddPortMapping")
	}
	rs.terminate(t)
}

// TestShareBadAdvertise: a malformed --advertise is a usage error (exit 2)
// with a one-line explanation.
func TestShareBadAdvertise(t *testing.T) {
	p := testenv.RunNode(t, testenv.NodeOptions{}, 20*time.Second, "share", t.TempDir(), "--listen", "127.0.0.1:0", "--advertise", "example.org")
	if code := p.ExitCode(); code != exitUsage {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitUsage, p.Output)
	}
	if !strings.Contains(p.Text(), "--advertise \"example.org\": want HOST:PORT") {
		t.Fatalf("unclear error:\n%s", p.Output)
	}
}

// TestTwoHomesSameSubnet: two homes use the same LAN subnet behind two
// routers; each share maps its port on its own router and a host in the
// other home fetches a file through that external address with OpenSSH
// sftp. (Discovery and mounting between the homes belong to the mount and
// discovery tests.)
func TestTwoHomesSameSubnet(t *testing.T) {
	t.Parallel()
	in := testenv.NewInternet(t)
	homes := []*testenv.Home{
		in.NewHome(t, testenv.HomeOptions{LAN: "192.168.77.0/24"}),
		in.NewHome(t, testenv.HomeOptions{LAN: "192.168.77.0/24"}),
	}
	var hosts []*testenv.Host
	var shares []*routerShare
	for _, h := range homes {
		hosts = append(hosts, h.AddHost(t))
		h.StartRouter(t)
	}
	if hosts[0].Addr != hosts[1].Addr {
		t.Fatalf("want the same LAN address in both homes, got %s and %s", hosts[0].Addr, hosts[1].Addr)
	}
	for i, h := range homes {
		rs := startRouterShare(t, hosts[i])
		rs.waitAdvertised(t, fmt.Sprintf("%s:%d", h.WAN(), rs.port))
		shares = append(shares, rs)
	}
	for i := range homes {
		j := 1 - i
		got, err := shares[j].sftpFrom(t, hosts[i].NS, homes[j].WAN().String(), shares[j].port)
		if err != nil || got != "hello through the router\n" {
			t.Fatalf("home %d → home %d through %s:%d: got %q, %v", i, j, homes[j].WAN(), shares[j].port, got, err)
		}
	}
	for i, rs := range shares {
		rs.terminate(t)
		if hasMapping(t, homes[i], hosts[i], rs.port) {
			t.Errorf("home %d: mapping left after SIGTERM", i)
		}
	}
}

// TestTwoHomesDiscord is the whole story: two homes with the same LAN
// subnet behind two UPnP routers, the fake Discord on the "internet" between
// them, and one `dsftp mount` in each home. Each shares its directory, maps
// its port, advertises the external address in the channel, and mounts the
// other home's share. Each also advertises its LAN address 192.168.77.2,
// which in the other home is that home's own computer: the host-key check
// must reject it and the external address must win.
func TestTwoHomesDiscord(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	in := testenv.NewInternet(t)

	byName, api := startLabDiscord(t, in, fake, []string{"home0", "home1"})
	tokens := []string{byName["home0"], byName["home1"]}

	type home struct {
		home  *testenv.Home
		host  *testenv.Host
		mnt   string
		share string
		proc  *testenv.Node
	}
	var hs []*home
	for i := 0; i < 2; i++ {
		h := &home{home: in.NewHome(t, testenv.HomeOptions{LAN: "192.168.77.0/24"})}
		h.host = h.home.AddHost(t)
		h.home.StartRouter(t)
		base := t.TempDir()
		h.mnt, h.share = filepath.Join(base, "peers"), filepath.Join(base, "share")
		for _, d := range []string{h.mnt, h.share} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(h.share, "whoami.txt"), []byte(fmt.Sprintf("home%d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	start := time.Now()
	for i, h := range hs {
		env := []string{"DSFTP_DISCORD_TOKEN=" + tokens[i], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}
		testenv.CleanupUnmount(t, h.mnt)
		// nsenter --net keeps the test's mount namespace (see above).
		h.proc = testenv.StartNode(t, testenv.NodeOptions{Env: env, NS: h.host.NS, NetOnly: true}, "mount", h.mnt,
			"--share", h.share, "--name", fmt.Sprintf("home%d", i), "--timeout", "5s")
	}
	for i, h := range hs {
		j := 1 - i
		file := filepath.Join(h.mnt, fmt.Sprintf("home%d", j), "whoami.txt")
		testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("home%d to mount home%d", i, j), func() bool {
			select {
			case <-h.proc.Done():
				t.Fatalf("dsftp mount in home%d exited:\n%s", i, h.proc.Output)
			default:
			}
			got, _ := os.ReadFile(file)
			return string(got) == fmt.Sprintf("home%d\n", j)
		})
		t.Logf("home%d reads home%d's share %v after both started", i, j, time.Since(start).Round(time.Millisecond))
		ext := fmt.Sprintf("%s:2200", h.home.WAN())
		if len(h.proc.Where(func(r testenv.Record) bool {
			return r.Msg == "advertised addresses" && slices.Contains(r.Strs("addrs"), ext)
		})) == 0 {
			t.Errorf("home%d did not advertise its external address %s:\n%s", i, ext, h.proc.Output)
		}
	}
	for i, h := range hs {
		if err := h.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.proc.Wait(30 * time.Second); !ok {
			t.Fatalf("dsftp mount in home%d still running 30 s after SIGTERM", i)
		}
		if testenv.Mounted(h.mnt) {
			t.Errorf("home%d: %s still mounted", i, h.mnt)
		}
		if hasMapping(t, h.home, h.host, 2200) {
			t.Errorf("home%d: mapping left after SIGTERM", i)
		}
	}
}
