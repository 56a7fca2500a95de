//go:build linux

package main

// Every member reaches every member with no port open anywhere: five homes
// on one simulated internet (testenv/netns.go) whose routers map no port
// (no miniupnpd) and drop unsolicited packets to themselves, as real home
// routers do. a, b and d do plain NAT, c sits behind the carrier's NAT as
// well (double NAT), s behind a symmetric NAT (a new port per flow).
// Nobody can be dialed, so there are no reverse connections or relays:
// each pair of a, b, c and d reads the other's share over a QUIC path
// punched through both NATs, learnt from STUN (coturn on the "internet")
// and the UDP candidates in the adverts. Nobody punches through to s, and
// the error says why and what would help.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestPunchMatrix(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	nsenter := testenv.Require(t, "nsenter")[0]
	testenv.Require(t, "turnserver")
	bin := testenv.Binary(t)
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	in := testenv.NewInternet(t)
	tr := in.StartTURN(t)

	names := []string{"a", "b", "c", "d", "s"}
	punchable := []string{"a", "b", "c", "d"}
	opts := map[string]testenv.HomeOptions{
		"a": {},
		"b": {},
		"c": {WAN: "100.64.113.1/24"},
		"d": {},
		"s": {Symmetric: true},
	}
	tokens, api := startLabDiscord(t, in, fake, names)

	for n, o := range opts {
		o.NoPortMapping, o.DropUnsolicited = true, true
		opts[n] = o
	}
	homes := newLabHomes(t, in, names, opts)
	start := time.Now()
	for _, n := range names {
		h := homes[n]
		env := []string{"DSFTP_DISCORD_TOKEN=" + tokens[n], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}
		testenv.CleanupUnmount(t, h.mnt)
		h.proc = testenv.Start(t, env, nsenter, "--net=/run/netns/"+h.host.NS, bin, "mount", h.mnt,
			"--share", h.share, "--name", n, "--timeout", "5s", "--log-level", "debug",
			"--stun", tr.Servers[0], "--stun", tr.Servers[1])
	}

	took, pending := readPairs(t, homes, punchable, names, start)

	routeRE := regexp.MustCompile(`msg="(?:peer reachable after failed attempts|peer reached over a punched QUIC path|peer reached without dialing it[^"]*|peer reachable [^"]* now[^"]*)" peer=(\S+) (?:addr=(?:"[^"]*"|\S+) )?route=(?:"([^"]+)"|(\S+))`)
	route := func(p pair) string {
		if pending[p] {
			return "FAIL"
		}
		r := "direct"
		for _, m := range routeRE.FindAllStringSubmatch(homes[p.from].proc.Output.String(), -1) {
			if m[1] == p.to {
				r = m[2] + m[3]
			}
		}
		return r
	}
	var lines []string
	for _, from := range punchable {
		l := fmt.Sprintf("%-6s", from)
		for _, to := range punchable {
			cell := "-"
			if from != to {
				cell = route(pair{from, to})
			}
			l += fmt.Sprintf(" | %-8s", cell)
		}
		lines = append(lines, l)
	}
	sort.Strings(lines)
	// How long each punch took, as the members logged it.
	tookRE := regexp.MustCompile(`msg="punched a QUIC path to a member" peer=\S+ remote=\S+ took=(\S+)`)
	var punches []time.Duration
	for _, n := range names {
		for _, m := range tookRE.FindAllStringSubmatch(homes[n].proc.Output.String(), -1) {
			if d, err := time.ParseDuration(m[1]); err == nil {
				punches = append(punches, d)
			}
		}
	}
	slices.Sort(punches)
	median := time.Duration(0)
	if len(punches) > 0 {
		median = punches[len(punches)/2]
	}
	t.Logf("directed pairs that read each other's file: %d of %d (last after %v); %d punches, median %v\nreader | a        | b        | c        | d\n%s",
		len(took), len(took)+len(pending), maxDur(took).Round(100*time.Millisecond), len(punches), median, strings.Join(lines, "\n"))
	if len(pending) > 0 {
		for _, n := range names {
			t.Logf("home %s output:\n%s", n, homes[n].proc.Output)
		}
		t.Fatalf("%d directed pairs cannot read each other", len(pending))
	}
	for p := range took {
		if r := route(p); r != "punched" {
			t.Errorf("%s→%s went %q; want punched", p.from, p.to, r)
		}
	}

	// s is behind a symmetric NAT: nobody punches through to it, and the
	// error says why and what would help.
	_, err := os.ReadFile(filepath.Join(homes["a"].mnt, "s", "whoami.txt"))
	if err == nil {
		t.Fatal("a read s's file through a symmetric NAT with no port open and no relay")
	}
	hint := "symmetric NAT on one side: add --turn (a TURN server) on either, or open a port on one of them (a port forward on the router)"
	waitUntil(t, 20*time.Second, "a's log says why s cannot be reached", func() bool {
		return strings.Contains(homes["a"].proc.Output.String(), hint)
	})
	for _, l := range strings.Split(homes["a"].proc.Output.String(), "\n") {
		if strings.Contains(l, hint) && strings.Contains(l, "peer=s") {
			t.Logf("a cannot reach s: %s", l)
			break
		}
	}

	// `dsftp peers` shows from the adverts how each member is reached
	// (once each has found that it cannot be dialed, and said so in an
	// advert re-posted at most every 10 s).
	var peersOut string
	var wrong []string
	waitUntil(t, 40*time.Second, "dsftp peers shows the punched routes", func() bool {
		out, err := testenv.RunIn(homes["a"].host.NS, 30*time.Second, "env", "DSFTP_DISCORD_TOKEN="+tokens["a"],
			"DSFTP_DISCORD_API="+api, "XDG_CONFIG_HOME="+t.TempDir(), bin, "peers")
		if err != nil {
			t.Fatalf("dsftp peers: %v\n%s", err, out)
		}
		peersOut, wrong = out, nil
		rows := 0
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 4 || f[0] == "NAME" {
				continue
			}
			rows++
			want := " punched "
			if f[0] == "s" {
				want = " none "
			}
			if !strings.Contains(l, want) {
				wrong = append(wrong, fmt.Sprintf("%s: %q; want %q", f[0], l, strings.TrimSpace(want)))
			}
		}
		return rows == len(names) && len(wrong) == 0
	})
	t.Logf("dsftp peers in home a:\n%s", peersOut)

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
