//go:build linux

package main

// Every member reaches every member: five homes on one simulated internet
// (testenv/netns.go), each running `dsftp mount` against the fake Discord.
// a's router speaks UPnP, e's only NAT-PMP (miniupnpd, enable_upnp=no),
// b and c do plain NAT. d's router sits behind the carrier's NAT
// (testenv/carrier.go) and reports the carrier's public address as its own
// (miniupnpd ext_ip=), so its mapping "works" but nobody outside can use
// it; the dial-back check finds out. b, c and d cannot be dialed: they keep
// reverse connections to a and e, which reach them over those, and relay
// between them. A packet capture on the relaying member shows only
// ciphertext (reach_capture_test.go).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

type labHome struct {
	name  string
	home  *testenv.Home
	host  *testenv.Host
	mnt   string
	share string
	proc  *testenv.Node
}

// startLabMount runs `dsftp mount` in h's host namespace, keeping the
// test's mount namespace (the mounts are visible here), with env and
// extra flags.
func startLabMount(t *testing.T, h *labHome, env []string, extra ...string) {
	t.Helper()
	testenv.CleanupUnmount(t, h.mnt)
	h.proc = testenv.StartNode(t, testenv.NodeOptions{Env: env, NS: h.host.NS, NetOnly: true},
		append([]string{"mount", h.mnt, "--share", h.share, "--name", h.name, "--timeout", "5s", "--log-level", "debug"}, extra...)...)
}

// routeTo is the route by which from's pool last said it reaches the
// peer named to ("direct" when it never said otherwise: the first
// connection of a direct route is not logged). Every pool record about
// a route has the attributes peer and route.
func routeTo(from *labHome, to string) string {
	r := "direct"
	for _, rec := range from.proc.Where(func(r testenv.Record) bool { return r.Has("peer", "route") }) {
		if rec.Str("peer") == to {
			r = rec.Str("route")
		}
	}
	return r
}

func TestReachMatrix(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	plaintcp := testenv.BuildProgram(t, "./testdata/testenv/cmd/plaintcp")
	testenv.Require(t, "tcpdump")
	in := testenv.NewInternet(t)

	names := []string{"a", "b", "c", "d", "e"}
	opts := map[string]testenv.HomeOptions{
		"a": {},
		"b": {NoPortMapping: true},
		"c": {NoPortMapping: true},
		"d": {WAN: "100.64.113.1/24", ReportWAN: testenv.CarrierPublic},
		"e": {NATPMPOnly: true},
	}
	tokens, api := startLabDiscord(t, in, fake, names)

	homes := newLabHomes(t, in, names, opts)
	// Written before anyone mounts: the relay check reads it from b.
	marker := randomFile(t, filepath.Join(homes["c"].share, "marker"), 1<<20)
	// Started before the mounts too: a process that `ip netns exec`
	// starts later holds copies of them in its own mount namespace, and
	// dsftp's unmount at SIGTERM waits until it exits.
	sink := startSink(t, in, plaintcp)
	start := time.Now()
	for _, n := range names {
		h := homes[n]
		startLabMount(t, h, []string{"DSFTP_DISCORD_TOKEN=" + tokens[n], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()})
	}

	// Every directed pair reads the other's file through its mount.
	took, pending := readPairs(t, homes, names, names, start)

	// The matrix: each pair's route as the reader's log says.
	route := func(p pair) string {
		if pending[p] {
			return "FAIL"
		}
		return routeTo(homes[p.from], p.to)
	}
	// A member that can be dialed reads an unreachable one over that
	// member's own reverse connection. Its first read may have gone
	// through a relay (the reverse connection was not up yet); then its
	// next requests move to the reverse connection. A lookup of a name
	// nobody has is such a request (the kernel does not cache it long).
	if len(pending) == 0 {
		i := 0
		testenv.WaitEvery(t, 45*time.Second, 200*time.Millisecond, "a reads b over b's reverse connection", func() bool {
			i++
			_, _ = os.Stat(filepath.Join(homes["a"].mnt, "b", fmt.Sprintf("nobody-has-%d", i)))
			return route(pair{"a", "b"}) == "reverse"
		})
		// Every pair asks once more, so the matrix shows the routes the
		// pairs settled on, not the first that worked.
		for p := range took {
			_, _ = os.Stat(filepath.Join(homes[p.from].mnt, p.to, "nobody-has-this"))
		}
		time.Sleep(time.Second)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "reader\\share")
	for _, to := range names {
		fmt.Fprintf(&b, " | %-12s", to)
	}
	b.WriteString("\n")
	var lines []string
	for _, from := range names {
		var l strings.Builder
		fmt.Fprintf(&l, "%-12s", from)
		for _, to := range names {
			cell := "-"
			if from != to {
				cell = route(pair{from, to})
			}
			fmt.Fprintf(&l, " | %-12s", cell)
		}
		lines = append(lines, l.String())
	}
	sort.Strings(lines)
	t.Logf("directed pairs that read each other's file: %d of 20 (last after %v)\n%s%s",
		20-len(pending), maxDur(took).Round(100*time.Millisecond), b.String(), strings.Join(lines, "\n"))
	if len(pending) > 0 {
		for _, n := range names {
			t.Logf("home %s output:\n%s", n, homes[n].proc.Output)
		}
		t.Fatalf("%d directed pairs cannot read each other", len(pending))
	}
	// b and c do not share a reachable address: their pair goes through
	// a relay, and the relaying member logged only byte counts.
	if r := route(pair{"b", "c"}); !strings.HasPrefix(r, "relay via ") {
		t.Errorf("b→c went %q; want a relay", r)
	}
	if r := route(pair{"a", "b"}); r != "reverse" {
		t.Errorf("a→b went %q; want the reverse connection", r)
	}

	// `dsftp peers` shows from the adverts how each member is reached.
	rows := listPeers(t, testenv.NodeOptions{NS: homes["a"].host.NS,
		Env: []string{"DSFTP_DISCORD_TOKEN=" + tokens["a"], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}})
	for _, r := range rows {
		t.Logf("dsftp peers in home a: %s route %q", r.Name, r.Route)
		unreachable := r.Name == "b" || r.Name == "c" || r.Name == "d"
		if unreachable && !strings.Contains(r.Route, "reverse via ") || (r.Name == "a" || r.Name == "e") && r.Route != "direct" {
			t.Errorf("route of %s is wrong: %q", r.Name, r.Route)
		}
	}

	// a and e had members dial their mapped addresses back.
	for _, n := range []string{"a", "e"} {
		h := homes[n]
		testenv.WaitEvery(t, 30*time.Second, 200*time.Millisecond, "members confirm "+n+"'s public address", func() bool {
			return h.proc.Count("members reached the share at its public address") > 0
		})
	}
	brokenMappingFound(t, in, homes["d"])
	relayCarriesNoPlaintext(t, homes, plaintcp, sink, marker, func() string { return route(pair{"b", "c"}) })

	for _, n := range names {
		h := homes[n]
		if err := h.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.proc.Wait(30 * time.Second); !ok {
			t.Fatalf("dsftp mount in home %s still running 30 s after SIGTERM", n)
		}
	}
}

func maxDur[K comparable](m map[K]time.Duration) time.Duration {
	var d time.Duration
	for _, v := range m {
		d = max(d, v)
	}
	return d
}

// pair is a reader and the share it reads.
type pair struct{ from, to string }

// readPairs has every home in among read every other's whoami.txt through
// its mount, for up to 90 s, and returns when each pair first read it
// (since start) and the pairs that never did. A mount that exits fails the
// test; all are the homes whose mounts are watched.
func readPairs(t *testing.T, homes map[string]*labHome, among, all []string, start time.Time) (map[pair]time.Duration, map[pair]bool) {
	t.Helper()
	took := map[pair]time.Duration{}
	pending := map[pair]bool{}
	for _, from := range among {
		for _, to := range among {
			if from != to {
				pending[pair{from, to}] = true
			}
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for p := range pending {
			got, _ := os.ReadFile(filepath.Join(homes[p.from].mnt, p.to, "whoami.txt"))
			if string(got) == "I am "+p.to+"\n" {
				took[p] = time.Since(start)
				delete(pending, p)
			}
		}
		for _, n := range all {
			select {
			case <-homes[n].proc.Done():
				t.Fatalf("dsftp mount in home %s exited:\n%s", n, homes[n].proc.Output)
			default:
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return took, pending
}

// startLabDiscord runs the fake Discord (program fake) on the lab's
// internet with one bot per name, and returns their tokens and its URL.
func startLabDiscord(t *testing.T, in *testenv.Internet, fake string, names []string) (map[string]string, string) {
	t.Helper()
	args := []string{"-listen", in.Addr.String() + ":0"}
	tokens := map[string]string{}
	for _, n := range names {
		tokens[n] = fmt.Sprintf("tok%s%d", n, os.Getpid())
		args = append(args, "-bot", tokens[n])
	}
	fd := testenv.StartIn(t, in.NS, nil, fake, args...)
	fd.WaitOutput(t, `"url"`, 20*time.Second)
	return tokens, regexp.MustCompile(`"url":"([^"]+)"`).FindStringSubmatch(fd.Output.String())[1]
}

// newLabHomes makes a home per name with opts[name], its router running
// and one host, and a share holding whoami.txt ("I am NAME") and an
// empty mountpoint.
func newLabHomes(t *testing.T, in *testenv.Internet, names []string, opts map[string]testenv.HomeOptions) map[string]*labHome {
	t.Helper()
	homes := map[string]*labHome{}
	for _, n := range names {
		h := &labHome{name: n, home: in.NewHome(t, opts[n])}
		h.host = h.home.AddHost(t)
		h.home.StartRouter(t)
		base := t.TempDir()
		h.mnt, h.share = filepath.Join(base, "peers"), filepath.Join(base, "share")
		for _, d := range []string{h.mnt, h.share} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(h.share, "whoami.txt"), []byte("I am "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		homes[n] = h
	}
	return homes
}
