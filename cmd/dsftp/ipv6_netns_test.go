//go:build linux

package main

// IPv6 homes on the simulated internet (testenv/ipv6.go): a and b have
// public IPv6 addresses behind their routers' stateful firewalls, which
// let in only replies (like real home routers), and IPv4 behind symmetric
// NATs, which defeat IPv4 punching; no port is mapped anywhere. c's router
// lets IPv6 connections in. a and b read each other's shares over a QUIC
// path punched through both firewalls over IPv6, and c's share over TCP to
// its IPv6 address.

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestIPv6Homes(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	testenv.Require(t, "nsenter", "turnserver")
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	in := testenv.NewInternet(t)
	tr := in.StartTURN(t)

	names := []string{"a", "b", "c"}
	opts := map[string]testenv.HomeOptions{
		"a": {IPv6: true, Symmetric: true},
		"b": {IPv6: true, Symmetric: true},
		"c": {OpenIPv6: true},
	}
	for n, o := range opts {
		o.NoPortMapping, o.DropUnsolicited = true, true
		opts[n] = o
	}
	tokens, api := startLabDiscord(t, in, fake, names)
	homes := newLabHomes(t, in, names, opts)
	start := time.Now()
	for _, n := range names {
		h := homes[n]
		env := []string{"DSFTP_DISCORD_TOKEN=" + tokens[n], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}
		startLabMount(t, h, env, "--stun", tr.Servers[0], "--stun", tr.Servers[1])
	}

	took, pending := readPairs(t, homes, names, names, start)
	if len(pending) > 0 {
		t.Fatalf("%d directed pairs cannot read each other", len(pending))
	}
	t.Logf("all 6 directed pairs read each other's file (last after %v)", maxDur(took).Round(100*time.Millisecond))

	route := func(from, to string) string { return routeTo(homes[from], to) }
	// a and b read each other over the punched path: a first read may
	// have gone through c (a relay over their reverse connections)
	// before the punch completed; the next requests move to the path.
	for _, p := range []pair{{"a", "b"}, {"b", "a"}} {
		i := 0
		testenv.WaitFor(t, 45*time.Second, p.from+" reads "+p.to+" over a punched path", func() bool {
			i++
			_, _ = os.Stat(filepath.Join(homes[p.from].mnt, p.to, "nobody-has-"+string(rune('0'+i%10))))
			return route(p.from, p.to) == "punched"
		})
	}
	t.Logf("a and b read each other over the punched path %v after the mounts started", time.Since(start).Round(100*time.Millisecond))
	// The path runs between the two IPv6 addresses: the punch's remote
	// end, and the source of the SSH connection the other share served.
	for _, p := range []pair{{"a", "b"}, {"b", "a"}} {
		from, to := homes[p.from], homes[p.to]
		var punched []string
		for _, r := range from.proc.Records("punched a QUIC path to a member") {
			remote, err := netip.ParseAddrPort(r.Str("remote"))
			if err == nil && to.home.LAN6.Contains(remote.Addr()) {
				punched = append(punched, remote.String()+" took "+r.Duration("took").Round(time.Millisecond).String())
			}
		}
		if len(punched) == 0 {
			t.Errorf("%s punched no path to %s's IPv6 address %v", p.from, p.to, to.host.Addr6)
		}
		t.Logf("%s punched to %s: %s", p.from, p.to, strings.Join(punched, ", "))
		if !servedFrom(to, from.host.Addr6, func(port uint16) bool { return port == 2200 }) {
			t.Errorf("%s's share served no connection from %s's IPv6 address %v over UDP port 2200", p.to, p.from, from.host.Addr6)
		}
	}
	// a and b reach c directly, over TCP to its IPv6 address: c's share
	// serves connections from their IPv6 addresses and ephemeral ports.
	for _, n := range []string{"a", "b"} {
		if r := route(n, "c"); r != "direct" {
			t.Errorf("%s→c went %q; want direct", n, r)
		}
		if !servedFrom(homes["c"], homes[n].host.Addr6, func(port uint16) bool { return port != 2200 }) {
			t.Errorf("c's share served no TCP connection from %s's IPv6 address %v", n, homes[n].host.Addr6)
		}
	}

	// `dsftp peers --json` shows, from the adverts, each member's public
	// IPv6 address among its TCP addresses and UDP candidates, and how it
	// is reached (a and b punched, once each has found that it cannot be
	// dialed and said so in an advert re-posted at most every 10 s).
	var listed []instance.Listed
	testenv.WaitFor(t, 40*time.Second, "dsftp peers shows a and b punched, c direct", func() bool {
		listed = listPeers(t, testenv.NodeOptions{NS: homes["c"].host.NS, NetOnly: true,
			Env: []string{"DSFTP_DISCORD_TOKEN=" + tokens["c"], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}})
		ok := len(listed) == len(names)
		for _, l := range listed {
			want := "punched"
			if l.Name == "c" {
				want = "direct"
			}
			ok = ok && strings.Contains(l.Route, want)
		}
		return ok
	})
	for _, l := range listed {
		h := homes[l.Name]
		v6 := netip.AddrPortFrom(h.host.Addr6, 2200).String()
		if !slices.Contains(l.Addrs, v6) || !slices.Contains(l.UDP, v6) {
			t.Errorf("%s advertises addrs %q and UDP candidates %q; want %s in both", l.Name, l.Addrs, l.UDP, v6)
		}
		t.Logf("%s: route %q, nat %q, addrs %q, udp %q", l.Name, l.Route, l.NAT, l.Addrs, l.UDP)
	}

	for _, n := range names {
		_ = homes[n].proc.Stop(t, syscall.SIGTERM, 30*time.Second)
	}
}

// servedFrom reports whether h's share logged a connection opened from ip,
// on a source port that port accepts.
func servedFrom(h *labHome, ip netip.Addr, port func(uint16) bool) bool {
	for _, r := range h.proc.Records("connection opened") {
		if ap, err := netip.ParseAddrPort(r.Str("remote")); err == nil && ap.Addr() == ip && port(ap.Port()) {
			return true
		}
	}
	return false
}
