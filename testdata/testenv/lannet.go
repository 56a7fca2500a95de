//go:build linux

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Netns is a network namespace made by a LAN test (NewLAN), linked to the
// test's bridge.
type Netns struct {
	Name  string // as `ip netns` knows it
	Iface string // the interface on the LAN, "eth0"
	IPv4  string // its IPv4 address, "" when the LAN is IPv6 only
}

// LANOptions shape a test LAN.
type LANOptions struct {
	// IPv4 gives every host an address 10.77.0.N/24; otherwise IPv4 is
	// not configured.
	IPv4 bool
	// NoIPv6 disables IPv6 on the hosts.
	NoIPv6 bool
}

var netnsSeq atomic.Int64

// NewLAN makes n namespaces, each with one veth interface "eth0" on a
// bridge that lives in a namespace of its own, so nothing touches the
// host's interfaces. Loopback is up in each. Everything is deleted at the
// end of the test. Namespace names carry the test process's PID.
func NewLAN(t testing.TB, n int, o LANOptions) []Netns {
	t.Helper()
	RequireRoot(t)
	Require(t, "ip")
	prefix := fmt.Sprintf("dsftp%d-%d", os.Getpid(), netnsSeq.Add(1))
	bridge := prefix + "-br"
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "del", made[i]).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v %s", made[i], err, out)
			}
		}
	})
	addNS := func(name string) {
		IP(t, "netns", "add", name)
		made = append(made, name)
		IP(t, "-n", name, "link", "set", "lo", "up")
	}
	addNS(bridge)
	IP(t, "-n", bridge, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	IP(t, "-n", bridge, "link", "set", "br0", "up")
	hosts := make([]Netns, n)
	for i := range hosts {
		h := Netns{Name: fmt.Sprintf("%s-h%d", prefix, i), Iface: "eth0"}
		addNS(h.Name)
		sysctl := []string{"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}
		if o.NoIPv6 {
			sysctl = []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}
		}
		for _, s := range sysctl {
			if out, err := exec.Command("ip", "netns", "exec", h.Name, "sysctl", "-q", "-w", s).CombinedOutput(); err != nil {
				t.Fatalf("sysctl %s in %s: %v %s", s, h.Name, err, out)
			}
		}
		port := fmt.Sprintf("p%d", i)
		IP(t, "-n", bridge, "link", "add", port, "type", "veth", "peer", "name", h.Iface, "netns", h.Name)
		IP(t, "-n", bridge, "link", "set", port, "master", "br0", "up")
		if o.IPv4 {
			h.IPv4 = fmt.Sprintf("10.77.0.%d", i+1)
			IP(t, "-n", h.Name, "addr", "add", h.IPv4+"/24", "dev", h.Iface)
		}
		IP(t, "-n", h.Name, "link", "set", h.Iface, "up")
		hosts[i] = h
	}
	return hosts
}

// IP runs the ip command and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Start runs a program inside the namespace (ip netns exec), like
// testenv.Start. Build binaries before: the namespace shares the file
// system, so a path from Binary works.
func (ns Netns) Start(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	return Start(t, env, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}
