//go:build linux

package lan_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestMain lets the test binary double as the small program the namespace
// tests run inside each namespace (Go cannot switch its own namespace
// reliably, so the program is started under `ip netns exec`).
func TestMain(m *testing.M) {
	if name := os.Getenv("DSFTP_LAN_HELPER"); name != "" {
		os.Exit(helperMain(name))
	}
	os.Exit(m.Run())
}

// helperMain runs one LAN discovery on every interface of its namespace
// and prints "peers: a,b" whenever the set of peers changes.
func helperMain(name string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var port int
	fmt.Sscan(os.Getenv("DSFTP_LAN_PORT"), &port)
	codec := newTestCodec(nil, name, "helper:22")
	reg := peers.NewRegistry(codec.ID())
	var ifaces []string
	if v := os.Getenv("DSFTP_LAN_IFACES"); v != "" {
		ifaces = strings.Split(v, ",")
	}
	d, err := lan.New(lan.Options{
		Codec: codec, Registry: reg, SelfID: codec.ID(), Port: port, Interfaces: ifaces,
		Interval: time.Minute, PollInterval: 200 * time.Millisecond,
	})
	if err == nil {
		err = d.Listen()
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	go reg.Run(ctx)
	ch, _ := reg.Watch()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				list := reg.List()
				for _, e := range list {
					fmt.Printf("addrs %s: %s\n", e.DisplayName, strings.Join(e.Addrs, " "))
				}
				fmt.Printf("peers: %s\n", strings.Join(names(reg), ","))
			}
		}
	}()
	fmt.Println("listening")
	if err := d.Run(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

func startHelper(t *testing.T, ns testenv.Netns, name string, port int, env ...string) *testenv.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "DSFTP_LAN_HELPER="+name, fmt.Sprintf("DSFTP_LAN_PORT=%d", port))
	p := ns.Start(t, env, exe)
	p.WaitOutput(t, "listening", 10*time.Second)
	return p
}

// Two hosts on one IPv4-only bridge find each other by broadcast.
func TestNetnsIPv4Broadcast(t *testing.T) {
	hosts := testenv.NewLAN(t, 2, testenv.LANOptions{IPv4: true, NoIPv6: true})
	a := startHelper(t, hosts[0], "alice", lan.Port)
	b := startHelper(t, hosts[1], "bob", lan.Port)
	a.WaitOutput(t, "peers: bob\n", 10*time.Second)
	b.WaitOutput(t, "peers: alice\n", 10*time.Second)
}

// Two hosts on one IPv6-only bridge find each other by link-local
// multicast.
func TestNetnsIPv6Multicast(t *testing.T) {
	hosts := testenv.NewLAN(t, 2, testenv.LANOptions{})
	a := startHelper(t, hosts[0], "alice", lan.Port)
	b := startHelper(t, hosts[1], "bob", lan.Port)
	a.WaitOutput(t, "peers: bob\n", 10*time.Second)
	b.WaitOutput(t, "peers: alice\n", 10*time.Second)
	// The only way to reach bob is his link-local address, on the
	// interface alice heard him on.
	if out := a.Output.String(); !regexp.MustCompile(`addrs bob: helper:22 \[fe80::[0-9a-f:]+%eth0\]:22\n`).MatchString(out) {
		t.Errorf("bob's link-local address is not a candidate:\n%s", out)
	}
}

// A host without an address cannot be heard; when it gets one, it
// announces at once (the interval is a minute) and the other host answers
// at once because it heard an unknown peer.
func TestNetnsAddressChange(t *testing.T) {
	hosts := testenv.NewLAN(t, 2, testenv.LANOptions{NoIPv6: true})
	testenv.IP(t, "-n", hosts[0].Name, "addr", "add", "10.77.0.1/24", "dev", hosts[0].Iface)
	a := startHelper(t, hosts[0], "alice", lan.Port)
	b := startHelper(t, hosts[1], "bob", lan.Port)
	time.Sleep(500 * time.Millisecond) // both have announced once, unheard
	if out := a.Output.String() + b.Output.String(); strings.Contains(out, "peers: ") {
		t.Fatalf("a host without an address was heard:\n%s", out)
	}
	testenv.IP(t, "-n", hosts[1].Name, "addr", "add", "10.77.0.2/24", "dev", hosts[1].Iface)
	a.WaitOutput(t, "peers: bob\n", 10*time.Second)
	b.WaitOutput(t, "peers: alice\n", 10*time.Second)
}

// A discovery limited to loopback neither hears nor reaches the LAN, but
// still finds another process on its own host.
func TestNetnsInterfaceFilter(t *testing.T) {
	hosts := testenv.NewLAN(t, 2, testenv.LANOptions{IPv4: true})
	alice := startHelper(t, hosts[0], "alice", lan.Port, "DSFTP_LAN_IFACES=lo")
	carol := startHelper(t, hosts[0], "carol", lan.Port)
	bob := startHelper(t, hosts[1], "bob", lan.Port)
	carol.WaitOutput(t, "peers: alice,bob\n", 10*time.Second)
	alice.WaitOutput(t, "peers: carol\n", 10*time.Second)
	bob.WaitOutput(t, "peers: carol\n", 10*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a wrong delivery to show
	if out := alice.Output.String(); strings.Contains(out, "bob") {
		t.Errorf("alice (loopback only) heard bob on the LAN:\n%s", out)
	}
	if out := bob.Output.String(); strings.Contains(out, "alice") {
		t.Errorf("bob heard alice, who announces on loopback only:\n%s", out)
	}
}
