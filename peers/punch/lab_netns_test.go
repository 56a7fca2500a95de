//go:build linux

package punch_test

// Hole punching in the reachability lab (testdata/testenv): homes behind
// routers that map no port and drop unsolicited packets to themselves,
// plain NAT, carrier-grade NAT and symmetric NAT, with coturn on the
// "internet" as the STUN server. Each side runs testdata/testenv/cmd/
// punchtest in its home's LAN host.

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type labSide struct {
	name string
	home *testenv.Home
	host *testenv.Host
	key  testenv.Key
}

// punchRun is one punchtest process and what it printed.
type punchRun struct {
	side   *labSide
	proc   *testenv.Process
	file   string
	local  netip.AddrPort
	public netip.AddrPort
	stun   []netip.AddrPort
	nat    string
}

var (
	reLocal  = regexp.MustCompile(`(?m)^local (\S+)$`)
	rePublic = regexp.MustCompile(`(?m)^public (\S+)$`)
	reSTUN   = regexp.MustCompile(`(?m)^stun \S+ (\S+)$`)
	reNAT    = regexp.MustCompile(`(?m)^nat (\S+)$`)
	reRead   = regexp.MustCompile(`(?m)^read "I am (\S+)" ms=(\d+)$`)
	rePunch  = regexp.MustCompile(`(?m)^punched remote=(\S+) dialed=(\S+) ms=(\d+)$`)
	reFail   = regexp.MustCompile(`(?m)^punch failed: (.*)$`)
)

func startPunch(t *testing.T, prog string, tr *testenv.TURN, s, peer *labSide, timeout time.Duration) *punchRun {
	t.Helper()
	r := &punchRun{side: s, file: filepath.Join(t.TempDir(), "peer")}
	r.proc = testenv.StartIn(t, s.host.NS, nil, prog, "-listen", s.host.Addr.String()+":0",
		"-key", s.key.Path, "-peer", peer.key.Path+".pub", "-stun", strings.Join(tr.Servers, ","),
		"-peer-file", r.file, "-name", s.name, "-timeout", timeout.String())
	r.proc.WaitOutput(t, "\nnat ", 20*time.Second)
	out := r.proc.Output.String()
	r.local = netip.MustParseAddrPort(reLocal.FindStringSubmatch(out)[1])
	r.public = netip.MustParseAddrPort(rePublic.FindStringSubmatch(out)[1])
	for _, m := range reSTUN.FindAllStringSubmatch(out, -1) {
		r.stun = append(r.stun, netip.MustParseAddrPort(m[1]))
	}
	r.nat = reNAT.FindStringSubmatch(out)[1]
	return r
}

func (r *punchRun) stop() {
	_ = r.proc.Cmd.Process.Kill()
	r.proc.Wait(5 * time.Second)
}

// tellPeer writes the peer's candidates (local, public) where r waits for
// them.
func (r *punchRun) tellPeer(t *testing.T, peer *punchRun) {
	t.Helper()
	body := fmt.Sprintf("candidates %s %s\nnat %s\n", peer.local, peer.public, peer.nat)
	tmp := r.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.file); err != nil {
		t.Fatal(err)
	}
}

// outcome is one side's result of a punch.
type outcome struct {
	read    bool
	punchMs int
	readMs  int
	dialed  bool
	failure string
}

func (r *punchRun) wait(t *testing.T, peerName string, d time.Duration) outcome {
	t.Helper()
	var o outcome
	testenv.WaitFor(t, d, r.side.name+" punches or fails", func() bool {
		out := r.proc.Output.String()
		if m := reFail.FindStringSubmatch(out); m != nil {
			o.failure = m[1]
			return true
		}
		if m := reRead.FindStringSubmatch(out); m != nil {
			if m[1] != peerName {
				t.Fatalf("%s read %q over the punched path; want I am %s", r.side.name, m[0], peerName)
			}
			pm := rePunch.FindStringSubmatch(out)
			o.read, o.dialed = true, pm[2] == "true"
			o.punchMs, _ = strconv.Atoi(pm[3])
			o.readMs, _ = strconv.Atoi(m[2])
			return true
		}
		select {
		case <-r.proc.Done():
			t.Fatalf("punchtest in %s exited:\n%s", r.side.name, out)
		default:
		}
		return false
	})
	return o
}

// tryPair runs one punch between a and b, both starting at once.
func tryPair(t *testing.T, prog string, tr *testenv.TURN, a, b *labSide, timeout time.Duration) (outcome, outcome) {
	t.Helper()
	ra, rb := startPunch(t, prog, tr, a, b, timeout), startPunch(t, prog, tr, b, a, timeout)
	defer ra.stop()
	defer rb.stop()
	ra.tellPeer(t, rb)
	rb.tellPeer(t, ra)
	oa := ra.wait(t, b.name, timeout+10*time.Second)
	ob := rb.wait(t, a.name, timeout+10*time.Second)
	return oa, ob
}

func TestPunchLab(t *testing.T) {
	t.Parallel()
	testenv.RequireNetns(t)
	testenv.Require(t, "turnserver")
	prog := testenv.BuildProgram(t, "./testdata/testenv/cmd/punchtest")
	in := testenv.NewInternet(t)
	tr := in.StartTURN(t)
	keys := t.TempDir()
	mk := func(name string, o testenv.HomeOptions) *labSide {
		o.NoPortMapping, o.DropUnsolicited = true, true
		s := &labSide{name: name, home: in.NewHome(t, o)}
		s.host = s.home.AddHost(t)
		s.key = testenv.NewKey(t, keys, name)
		return s
	}
	p1, p2 := mk("plain1", testenv.HomeOptions{}), mk("plain2", testenv.HomeOptions{})
	cg := mk("cgnat", testenv.HomeOptions{WAN: "100.64.113.1/24"})
	s1, s2 := mk("sym1", testenv.HomeOptions{Symmetric: true}), mk("sym2", testenv.HomeOptions{Symmetric: true})
	var report strings.Builder

	// (d) STUN tells each member the address the internet sees: its
	// router's, or the carrier's; both servers see the same port except
	// behind the symmetric NAT.
	t.Run("STUN", func(t *testing.T) {
		for _, c := range []struct {
			s      *labSide
			public string
			nat    string
		}{{p1, p1.home.WAN().String(), "cone"}, {cg, testenv.CarrierPublic, "cone"}, {s1, s1.home.WAN().String(), "symmetric"}} {
			r := startPunch(t, prog, tr, c.s, p2, time.Second)
			r.stop()
			fmt.Fprintf(&report, "STUN in %s: local %s, servers saw %v, NAT %s\n", c.s.name, r.local, r.stun, r.nat)
			if len(r.stun) != 2 {
				t.Fatalf("%s: %d STUN answers, want 2:\n%s", c.s.name, len(r.stun), r.proc.Output)
			}
			for _, a := range r.stun {
				if a.Addr().String() != c.public {
					t.Errorf("%s: a STUN server saw %s; want the address %s", c.s.name, a, c.public)
				}
			}
			if r.nat != c.nat {
				t.Errorf("%s: NAT %s, want %s", c.s.name, r.nat, c.nat)
			}
		}
	})

	// (a) Plain NAT on both sides, no port mapped: punched, SSH read both
	// ways, a few times for the median.
	// (b) CGNAT with plain NAT: the same.
	for _, c := range []struct {
		a, b  *labSide
		tries int
	}{{p1, p2, 5}, {cg, p2, 3}} {
		t.Run(c.a.name+"-"+c.b.name, func(t *testing.T) {
			var times []int
			for i := range c.tries {
				oa, ob := tryPair(t, prog, tr, c.a, c.b, 15*time.Second)
				if !oa.read || !ob.read {
					t.Fatalf("try %d: %s: %+v; %s: %+v", i+1, c.a.name, oa, c.b.name, ob)
				}
				if oa.dialed == ob.dialed {
					t.Errorf("try %d: both sides on a connection with dialed=%v; want one path", i+1, oa.dialed)
				}
				times = append(times, max(oa.readMs, ob.readMs))
				fmt.Fprintf(&report, "%s <-> %s try %d: punched in %d / %d ms, both read over SSH after %d ms\n",
					c.a.name, c.b.name, i+1, oa.punchMs, ob.punchMs, max(oa.readMs, ob.readMs))
			}
			slices.Sort(times)
			fmt.Fprintf(&report, "%s <-> %s: median %d ms from the punch's start to both reads (%d tries)\n",
				c.a.name, c.b.name, times[len(times)/2], c.tries)
		})
	}

	// (c) Symmetric NAT on both sides: no path, and the error says what
	// would help. Symmetric with plain NAT: the plain side's router lets
	// in only the port its own packets went to, which is not the port the
	// symmetric NAT gives the flow towards it, so this fails too.
	for _, c := range []struct {
		a, b *labSide
		hint string
	}{{s1, s2, "symmetric NAT on both sides: add --turn (a TURN server) on either, or open a port on one of them (a port forward on the router)"},
		{s1, p1, "symmetric NAT on one side: add --turn (a TURN server) on either, or open a port on one of them (a port forward on the router)"}} {
		t.Run(c.a.name+"-"+c.b.name, func(t *testing.T) {
			oa, ob := tryPair(t, prog, tr, c.a, c.b, 6*time.Second)
			fmt.Fprintf(&report, "%s <-> %s: %s: %+v; %s: %+v\n", c.a.name, c.b.name, c.a.name, oa, c.b.name, ob)
			for _, o := range []outcome{oa, ob} {
				if o.read {
					t.Fatalf("punched through a symmetric NAT: %+v", o)
				}
				if !strings.Contains(o.failure, "no QUIC path to the peer") || !strings.Contains(o.failure, c.hint) {
					t.Errorf("failure %q; want no QUIC path and the hint %q", o.failure, c.hint)
				}
			}
		})
	}
	t.Logf("hole punching in the lab:\n%s", report.String())
}
