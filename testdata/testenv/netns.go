//go:build linux

package testenv

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Network namespaces for the UPnP tests: an "internet" namespace and, behind
// it, homes made of a router namespace running the real miniupnpd (nftables
// build) and LAN host namespaces.
//
//	internet ns: bridge "inet" ── veth ── router ns: wan0 (WAN address)
//	                                       router ns: bridge "lan" ── veth ── host ns: eth0
//
// The namespaces have no link to the host's own network: traffic of a test
// stays inside them. Veths are created directly inside their namespaces, so
// their names never meet the names of other tests in the root namespace.
//
// Go code cannot switch its own namespace reliably (the runtime and goupnp
// use other threads), so programs run in a namespace with `ip netns exec`;
// build them before (there is no module proxy inside).

// PublicWAN is the WAN prefix of a home router whose address must look
// public to miniupnpd. miniupnpd 2.3.1 refuses the RFC 5737 documentation
// ranges (203.0.113.0/24 and the others) like private ones, so this is an
// ordinary-looking range; it exists only inside the test's namespaces.
const PublicWAN = "198.20.113.0/24"

// CGNATWAN is the WAN prefix of a router behind carrier-grade NAT: the
// internet namespace masquerades it behind CarrierPublic and lets no
// connection in (carrier.go).
const CGNATWAN = "100.64.113.0/24"

var nsCounter atomic.Int64

// RequireNetns checks what the namespace tests need: root, ip, nft,
// miniupnpd and upnpc.
func RequireNetns(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	Require(t, "ip", "nft", "/usr/sbin/miniupnpd", "upnpc")
}

// NewNetns creates a namespace named after the test process and a counter,
// with loopback up, and deletes it at cleanup. tag (a short word) goes into
// the name for readability.
func NewNetns(t testing.TB, tag string) string {
	t.Helper()
	name := fmt.Sprintf("dsftp-%d-%d-%s", os.Getpid(), nsCounter.Add(1), tag)
	MustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	MustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// MustRun runs a command and returns its combined output; it fails the
// test on error.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RunIn runs a command inside namespace ns and returns its combined output
// and error. A deadline of timeout keeps a stuck tool from hanging the test.
func RunIn(ns string, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	// A child left holding the output pipe must not hang the test; a
	// loaded machine may take a while to drain the pipe of one that did
	// not.
	cmd.WaitDelay = 10 * time.Second
	var out SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s %s: still running after %v", name, strings.Join(args, " "), timeout)
	}
}

// MustRunIn is RunIn that fails the test on error.
func MustRunIn(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	out, err := RunIn(ns, 30*time.Second, name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// StartIn starts a long-running program inside namespace ns (see Start;
// `ip netns exec` execs the program, so the PID killed at cleanup is the
// program's own).
func StartIn(t testing.TB, ns string, env []string, name string, args ...string) *Process {
	t.Helper()
	return Start(t, env, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Internet is the namespace between the homes: a bridge that every home's
// WAN link plugs into, plus addresses for clients "on the internet".
type Internet struct {
	NS string
	// Addr is the internet host's address in PublicWAN, Addr6 its IPv6
	// address in InternetIPv6 (ipv6.go).
	Addr  netip.Addr
	Addr6 netip.Addr

	mu       sync.Mutex
	homes    int
	prefixes map[netip.Prefix]bool
	carrier  bool // the carrier's NAT is set up (carrier.go)
	second   bool // SecondAddr is added (turn.go)
}

// NewInternet creates the internet namespace with a bridge and the address
// 198.20.113.254/24 (see PublicWAN).
func NewInternet(t testing.TB) *Internet {
	t.Helper()
	RequireNetns(t)
	in := &Internet{NS: NewNetns(t, "inet"), prefixes: map[netip.Prefix]bool{}}
	MustRun(t, "ip", "-n", in.NS, "link", "add", "inet", "type", "bridge")
	MustRun(t, "ip", "-n", in.NS, "link", "set", "inet", "up")
	in.Addr = in.addPrefix(t, netip.MustParsePrefix(PublicWAN))
	MustRunIn(t, in.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	in.addIPv6(t)
	return in
}

// addPrefix gives the internet namespace the .254 address of p, once.
func (in *Internet) addPrefix(t testing.TB, p netip.Prefix) netip.Addr {
	t.Helper()
	p = p.Masked()
	a := lastHost(p)
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.prefixes[p] {
		MustRun(t, "ip", "-n", in.NS, "addr", "add", netip.PrefixFrom(a, p.Bits()).String(), "dev", "inet")
		in.prefixes[p] = true
	}
	if carrierSpace.Contains(p.Addr()) {
		in.addCarrierNAT(t)
	}
	return a
}

func lastHost(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 2
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// HomeOptions shape a home network.
type HomeOptions struct {
	// WAN is the router's WAN address with prefix length. Empty means the
	// next free address in PublicWAN (198.20.113.1/24, .2 is skipped…).
	// An address in 100.64.0.0/10 (CGNATWAN) puts the home behind the
	// carrier's NAT (carrier.go).
	WAN string
	// ReportWAN makes miniupnpd report this address as the external one
	// (ext_ip=) instead of the WAN interface's: a router behind carrier-
	// grade NAT that learnt the carrier's public address (as STUN would
	// tell it) and hands out mappings that nobody outside can reach.
	ReportWAN string
	// LAN is the LAN prefix; the router takes .1, hosts .2, .3, … Empty
	// means 192.168.77.0/24 (two homes may use the same one).
	LAN string
	// IGDv1 makes miniupnpd describe itself as IGDv1 (force_igd_desc_v1),
	// so only WANIPConnection:1 clients find it.
	IGDv1 bool
	// Rules replace miniupnpd's permission rules. Empty means: allow ports
	// 1024-65535 for the LAN, deny everything else.
	Rules []string
	// NoSkeleton leaves out the nftables chains miniupnpd adds its rules
	// to: a misconfigured router that answers every AddPortMapping with
	// UPnP error 501 (ActionFailed).
	NoSkeleton bool
	// NATPMPOnly turns UPnP off in miniupnpd (enable_upnp=no): a router
	// that only speaks NAT-PMP/PCP.
	NATPMPOnly bool
	// NoPortMapping runs no port-mapping service at all: a router that
	// only does NAT (StartRouter does nothing).
	NoPortMapping bool
	// Symmetric makes the router's NAT symmetric: every new flow leaves
	// from a new random port (nftables masquerade random), so the port a
	// STUN server sees is not the one a peer would meet.
	Symmetric bool
	// DropUnsolicited drops, as real home routers do, packets addressed
	// to the router itself that no flow from inside asked for. A router
	// that accepts them keeps a conntrack entry for each, and Linux NAT
	// then gives the next outgoing flow to that address another port,
	// which breaks hole punching in a way real routers don't.
	DropUnsolicited bool
	// IPv6 routes a global IPv6 prefix to the home (ipv6.go): its hosts
	// get public IPv6 addresses, without NAT, behind the router's
	// stateful firewall, which lets in only replies to their own flows.
	// OpenIPv6 is IPv6 with new connections from outside let in too.
	IPv6, OpenIPv6 bool
}

// Home is a router namespace running miniupnpd, with LAN hosts behind it.
type Home struct {
	Router    string // router namespace
	RouterLAN netip.Addr
	LAN       netip.Prefix
	Internet  *Internet
	// LAN6 is the home's IPv6 prefix and RouterLAN6 the router's address
	// in it, with HomeOptions.IPv6; invalid otherwise.
	LAN6       netip.Prefix
	RouterLAN6 netip.Addr

	t       testing.TB
	opts    HomeOptions
	dir     string
	conf    string
	wan     netip.Prefix // router's WAN address/len
	wan6    netip.Addr   // router's IPv6 WAN address, with IPv6
	hosts   int
	upnpd   *Process
	upnpdMu sync.Mutex
}

// NewHome creates a router namespace plugged into the internet bridge,
// with masquerading out of its WAN, the nftables skeleton miniupnpd needs,
// and miniupnpd's configuration. Start miniupnpd with StartRouter.
func (in *Internet) NewHome(t testing.TB, o HomeOptions) *Home {
	t.Helper()
	in.mu.Lock()
	in.homes++
	n := in.homes
	in.mu.Unlock()
	if o.WAN == "" {
		// .1, .3, .5 … (never the internet's .254).
		o.WAN = fmt.Sprintf("198.20.113.%d/24", 2*n-1)
	}
	if o.LAN == "" {
		o.LAN = "192.168.77.0/24"
	}
	wan, err := netip.ParsePrefix(o.WAN)
	if err != nil {
		t.Fatalf("HomeOptions.WAN %q: %v", o.WAN, err)
	}
	lan, err := netip.ParsePrefix(o.LAN)
	if err != nil {
		t.Fatalf("HomeOptions.LAN %q: %v", o.LAN, err)
	}
	lan = lan.Masked()
	in.addPrefix(t, wan)

	h := &Home{Internet: in, LAN: lan, RouterLAN: lan.Addr().Next(), wan: wan, t: t, opts: o, dir: t.TempDir()}
	h.Router = NewNetns(t, fmt.Sprintf("r%d", n))
	r := h.Router
	// WAN link: wan0 in the router, h<n> on the internet bridge.
	inSide := fmt.Sprintf("h%d", n)
	MustRun(t, "ip", "link", "add", "name", "wan0", "netns", r, "type", "veth", "peer", "name", inSide, "netns", in.NS)
	MustRun(t, "ip", "-n", in.NS, "link", "set", inSide, "master", "inet", "up")
	MustRun(t, "ip", "-n", r, "addr", "add", wan.String(), "dev", "wan0")
	MustRun(t, "ip", "-n", r, "link", "set", "wan0", "up")
	// Routers on other prefixes (a CGNAT WAN) reach the others through
	// the internet namespace, which forwards between its prefixes (and
	// plays the carrier's NAT for 100.64.0.0/10).
	MustRun(t, "ip", "-n", r, "route", "add", "default", "via", lastHost(wan.Masked()).String())
	// LAN bridge; hosts plug in with AddHost.
	MustRun(t, "ip", "-n", r, "link", "add", "lan", "type", "bridge")
	MustRun(t, "ip", "-n", r, "addr", "add", netip.PrefixFrom(h.RouterLAN, lan.Bits()).String(), "dev", "lan")
	MustRun(t, "ip", "-n", r, "link", "set", "lan", "up")
	MustRunIn(t, r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	if o.IPv6 || o.OpenIPv6 {
		h.addIPv6(t, n)
	}

	h.writeRouterConfig(t, o)
	return h
}

// skeletonNFT is the skeleton miniupnpd 2.3.1 (nftables) expects in
// "table inet filter"; without it every AddPortMapping fails with 501.
// Each jump on its own line. MASQUERADE and INPUT are filled in by
// routerNFT.
const skeletonNFT = `table inet filter {
INPUT
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan0" accept
		iifname "lan" oifname "lan" accept
		OPENIPV6
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
		oifname "wan0" meta nfproto ipv4 MASQUERADE
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`

// writeRouterConfig loads the nftables skeleton into the router (unless
// o.NoSkeleton) and writes miniupnpd's configuration.
func (h *Home) writeRouterConfig(t testing.TB, o HomeOptions) {
	t.Helper()
	nftFile := filepath.Join(h.dir, "skeleton.nft")
	if err := os.WriteFile(nftFile, []byte(routerNFT(o)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !o.NoSkeleton {
		MustRunIn(t, h.Router, "nft", "-f", nftFile)
	}
	rules := o.Rules
	if len(rules) == 0 {
		rules = []string{"allow 1024-65535 " + h.LAN.String() + " 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535"}
	}
	conf := []string{
		"ext_ifname=wan0",
		"listening_ip=lan",
		"http_port=5000",
		"enable_upnp=" + yesNo(!o.NATPMPOnly),
		"enable_natpmp=yes",
		"secure_mode=yes",
		"system_uptime=yes",
		"ipv6_disable=yes",
		"lease_file=" + filepath.Join(h.dir, "leases"),
		"uuid=" + uuid(),
	}
	if o.IGDv1 {
		conf = append(conf, "force_igd_desc_v1=yes")
	}
	if o.ReportWAN != "" {
		conf = append(conf, "ext_ip="+o.ReportWAN)
	}
	conf = append(conf, rules...)
	h.conf = filepath.Join(h.dir, "miniupnpd.conf")
	if err := os.WriteFile(h.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dropUnsolicitedNFT is the input chain of a router that answers only
// what its own LAN and its own flows asked for.
const dropUnsolicitedNFT = `	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iifname "lo" accept
		iifname "lan" accept
		NEIGHBOR
	}`

// routerNFT is the router's nftables ruleset for o.
func routerNFT(o HomeOptions) string {
	masq, input, open := "masquerade", "", ""
	if o.Symmetric {
		masq = "masquerade random"
	}
	if o.DropUnsolicited {
		input = strings.Replace(dropUnsolicitedNFT, "NEIGHBOR", neighborNFT, 1)
	}
	if o.OpenIPv6 {
		open = openIPv6NFT
	}
	return strings.NewReplacer("MASQUERADE", masq, "INPUT", input, "OPENIPV6", open).Replace(skeletonNFT)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// RootDescURL is where miniupnpd serves its device description.
func (h *Home) RootDescURL() string {
	return "http://" + h.RouterLAN.String() + ":5000/rootDesc.xml"
}

// WAN returns the router's WAN address.
func (h *Home) WAN() netip.Addr { return h.wan.Addr() }

// Host is a LAN computer: a namespace behind the router.
type Host struct {
	NS   string
	Addr netip.Addr
	// Addr6 is its public IPv6 address in a home with IPv6; invalid
	// otherwise.
	Addr6 netip.Addr
}

// AddHost plugs a new host namespace into the LAN, with the next address
// and a default route through the router.
func (h *Home) AddHost(t testing.TB) *Host {
	t.Helper()
	h.hosts++
	addr := h.RouterLAN
	for i := 0; i < h.hosts; i++ {
		addr = addr.Next()
	}
	host := &Host{NS: NewNetns(t, "host"), Addr: addr}
	port := fmt.Sprintf("l%d", h.hosts)
	MustRun(t, "ip", "link", "add", "name", "eth0", "netns", host.NS, "type", "veth", "peer", "name", port, "netns", h.Router)
	MustRun(t, "ip", "-n", h.Router, "link", "set", port, "master", "lan", "up")
	MustRun(t, "ip", "-n", host.NS, "addr", "add", netip.PrefixFrom(addr, h.LAN.Bits()).String(), "dev", "eth0")
	MustRun(t, "ip", "-n", host.NS, "link", "set", "eth0", "up")
	MustRun(t, "ip", "-n", host.NS, "route", "add", "default", "via", h.RouterLAN.String())
	if h.LAN6.IsValid() {
		h.addHostIPv6(t, host, h.hosts)
	}
	return host
}

// StartRouter starts miniupnpd in the router namespace and waits until it
// serves HTTP. miniupnpd is killed by PID at cleanup.
func (h *Home) StartRouter(t testing.TB) *Process {
	t.Helper()
	h.upnpdMu.Lock()
	defer h.upnpdMu.Unlock()
	// -P: its own pid file; the default /run/miniupnpd.pid would make a
	// second router (another test, another home) refuse to start.
	if h.opts.NoPortMapping {
		return nil
	}
	p := StartIn(t, h.Router, nil, "/usr/sbin/miniupnpd", "-f", h.conf, "-d", "-P", filepath.Join(h.dir, "miniupnpd.pid"))
	if h.opts.NATPMPOnly {
		p.WaitOutput(t, "Listening for NAT-PMP", 10*time.Second)
	} else {
		p.WaitOutput(t, "HTTP listening on port", 10*time.Second)
	}
	h.upnpd = p
	return p
}

// StopRouter stops miniupnpd with SIGTERM (it takes about 1.5 s) and waits.
func (h *Home) StopRouter(t testing.TB) {
	t.Helper()
	h.upnpdMu.Lock()
	p := h.upnpd
	h.upnpd = nil
	h.upnpdMu.Unlock()
	if p == nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(10 * time.Second); !ok {
		t.Fatalf("miniupnpd (pid %d) still running 10 s after SIGTERM", p.Cmd.Process.Pid)
	}
}

// Miniupnpd returns the running miniupnpd, or nil.
func (h *Home) Miniupnpd() *Process {
	h.upnpdMu.Lock()
	defer h.upnpdMu.Unlock()
	return h.upnpd
}

// Reboot simulates a router reboot: miniupnpd stops, the router forgets
// every mapping (empty miniupnpd chains, no lease file), optionally gets a
// new WAN address from the provider, and miniupnpd starts again.
func (h *Home) Reboot(t testing.TB, newWAN string) {
	t.Helper()
	h.StopRouter(t)
	for _, c := range []string{"miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"} {
		MustRunIn(t, h.Router, "nft", "flush", "chain", "inet", "filter", c)
	}
	if err := os.Remove(filepath.Join(h.dir, "leases")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if newWAN != "" {
		h.SetWAN(t, newWAN)
	}
	h.StartRouter(t)
}

// SetWAN changes the router's WAN address (the provider handed out a new
// one). miniupnpd reads it from the interface on every request.
func (h *Home) SetWAN(t testing.TB, wan string) {
	t.Helper()
	p, err := netip.ParsePrefix(wan)
	if err != nil {
		t.Fatalf("SetWAN %q: %v", wan, err)
	}
	h.Internet.addPrefix(t, p)
	// Delete first: removing a primary address also removes the
	// secondaries of its subnet.
	MustRun(t, "ip", "-n", h.Router, "addr", "del", h.wan.String(), "dev", "wan0")
	MustRun(t, "ip", "-n", h.Router, "addr", "add", p.String(), "dev", "wan0")
	MustRun(t, "ip", "-n", h.Router, "route", "replace", "default", "via", lastHost(p.Masked()).String())
	h.wan = p
}

// Forwards lists the router's TCP port forwards as the nftables rules
// miniupnpd made (protocol 6 is TCP), whatever protocol asked for them, as "EXT->ADDR:PORT"
// (e.g. "2222->192.168.77.2:2222"), sorted.
func (h *Home) Forwards(t testing.TB) []string {
	t.Helper()
	out := MustRunIn(t, h.Router, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
	re := regexp.MustCompile(`0x6 th dport (\d+) dnat ip to ([0-9.]+:\d+)`)
	var fw []string
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		fw = append(fw, m[1]+"->"+m[2])
	}
	sort.Strings(fw)
	return fw
}

// Mappings lists the router's port mappings as `upnpc -l` run on host
// prints them, e.g. "0 TCP 2222->192.168.77.2:2222 'dsftp' <remote host> 3598"
// (fields joined by one space). A router that upnpc considers unconnected
// (no public address) lists nothing.
func (h *Home) Mappings(t testing.TB, host *Host) []string {
	t.Helper()
	// -u skips SSDP discovery (2 s each time): the router's URL is known.
	out, err := RunIn(host.NS, 20*time.Second, "upnpc", "-u", h.RootDescURL(), "-l")
	if err != nil && !strings.Contains(out, "not connected?") {
		t.Fatalf("upnpc -l in %s: %v\n%s", host.NS, err, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && (f[1] == "TCP" || f[1] == "UDP") && strings.Contains(f[2], "->") {
			lines = append(lines, strings.Join(f, " "))
		}
	}
	return lines
}
