//go:build linux

package testenv

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestCarrierNAT: a home with a WAN address in 100.64.0.0/10 reaches
// the internet and other homes from the carrier's public address, and no
// connection from outside gets in, neither to the router's own address
// nor to the carrier's.
func TestCarrierNAT(t *testing.T) {
	t.Parallel()
	RequireNetns(t)
	plaintcp := BuildProgram(t, "./testdata/testenv/cmd/plaintcp")
	in := NewInternet(t)
	cg := in.NewHome(t, HomeOptions{WAN: "100.64.113.1/24", NoPortMapping: true})
	pub := in.NewHome(t, HomeOptions{NoPortMapping: true})
	host := cg.AddHost(t)
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := func(ns, ip string) (*Process, string) {
		p := StartIn(t, ns, nil, plaintcp, "listen", ip+":0")
		p.WaitOutput(t, "listening on", 10*time.Second)
		return p, regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(p.Output.String())[1]
	}

	// Out: to the internet namespace itself and, forwarded, to another
	// home's router; both see the carrier's address.
	for _, to := range []struct{ ns, ip string }{{in.NS, in.Addr.String()}, {pub.Router, pub.WAN().String()}} {
		l, addr := listen(to.ns, to.ip)
		MustRunIn(t, host.NS, plaintcp, "send", addr, file)
		l.WaitOutput(t, "received 1000 bytes from "+CarrierPublic+":", 10*time.Second)
	}

	// In: nothing gets through; each attempt is dropped by the carrier.
	l, addr := listen(cg.Router, cg.WAN().String())
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []struct{ ns, to string }{
		{pub.Router, addr},                       // forwarded into the shared space
		{in.NS, addr},                            // from the carrier's own namespace
		{pub.Router, CarrierPublic + ":" + port}, // to the carrier's public address
	} {
		before := in.CarrierDrops(t)
		if out, err := RunIn(from.ns, 2*time.Second, plaintcp, "send", from.to, file); err == nil {
			t.Errorf("from %s, a connection to %s got through:\n%s", from.ns, from.to, out)
		}
		if after := in.CarrierDrops(t); after <= before {
			t.Errorf("from %s to %s: the carrier dropped nothing (%d packets before, %d after)", from.ns, from.to, before, after)
		}
	}
	if out := l.Output.String(); regexp.MustCompile(`received|error after`).MatchString(out) {
		t.Errorf("the router behind the carrier was reached:\n%s", out)
	}
}
