//go:build linux

package testenv

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestIPv6Firewall: hosts in IPv6 homes reach the internet and other
// homes from their own global addresses (no NAT). Behind a stateful
// firewall nothing from outside gets in, to a host or to the router; an
// open firewall lets connections in to its hosts.
func TestIPv6Firewall(t *testing.T) {
	t.Parallel()
	RequireNetns(t)
	plaintcp := BuildProgram(t, "./testdata/testenv/cmd/plaintcp")
	in := NewInternet(t)
	opts := HomeOptions{IPv6: true, NoPortMapping: true, DropUnsolicited: true}
	fw := in.NewHome(t, opts)
	opts.IPv6, opts.OpenIPv6 = false, true
	open := in.NewHome(t, opts)
	v4 := in.NewHome(t, HomeOptions{NoPortMapping: true})
	hf, ho, h4 := fw.AddHost(t), open.AddHost(t), v4.AddHost(t)
	if !hf.Addr6.IsValid() || !ho.Addr6.IsValid() || h4.Addr6.IsValid() {
		t.Fatalf("IPv6 addresses: firewalled %v, open %v, IPv4-only %v", hf.Addr6, ho.Addr6, h4.Addr6)
	}
	if !fw.LAN6.Contains(hf.Addr6) || fw.LAN6.Overlaps(open.LAN6) {
		t.Fatalf("prefixes: %v holds %v; %v", fw.LAN6, hf.Addr6, open.LAN6)
	}
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := func(ns string, ip netip.Addr) (*Process, string) {
		p := StartIn(t, ns, nil, plaintcp, "listen", netip.AddrPortFrom(ip, 0).String())
		p.WaitOutput(t, "listening on", 10*time.Second)
		return p, regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(p.Output.String())[1]
	}
	reached := regexp.MustCompile(`received|error after`)

	// Out: to the internet and to the open home, from the host's own
	// address.
	for _, to := range []struct {
		ns string
		ip netip.Addr
	}{{in.NS, in.Addr6}, {ho.NS, ho.Addr6}} {
		l, addr := listen(to.ns, to.ip)
		MustRunIn(t, hf.NS, plaintcp, "send", addr, file)
		l.WaitOutput(t, "received 1000 bytes from ["+hf.Addr6.String()+"]:", 10*time.Second)
	}
	// In: to the firewalled host and its router, from the internet and
	// from another home, nothing gets through.
	for _, to := range []struct {
		ns string
		ip netip.Addr
	}{{hf.NS, hf.Addr6}, {fw.Router, fw.WAN6()}, {fw.Router, fw.RouterLAN6}} {
		l, addr := listen(to.ns, to.ip)
		for _, from := range []string{in.NS, ho.NS} {
			if out, err := RunIn(from, 2*time.Second, plaintcp, "send", addr, file); err == nil {
				t.Errorf("from %s, a connection to %s got through:\n%s", from, addr, out)
			}
		}
		if out := l.Output.String(); reached.MatchString(out) {
			t.Errorf("%s was reached from outside:\n%s", addr, out)
		}
	}
	// The open home lets the connection in.
	l, addr := listen(ho.NS, ho.Addr6)
	MustRunIn(t, in.NS, plaintcp, "send", addr, file)
	l.WaitOutput(t, "received 1000 bytes from ["+in.Addr6.String()+"]:", 10*time.Second)
	// IPv4 still leaves through the NAT.
	l4, addr4 := listen(in.NS, in.Addr)
	MustRunIn(t, hf.NS, plaintcp, "send", addr4, file)
	l4.WaitOutput(t, "received 1000 bytes from "+fw.WAN().String()+":", 10*time.Second)
}
