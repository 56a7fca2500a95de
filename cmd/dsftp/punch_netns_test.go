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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestPunchMatrix(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	testenv.Require(t, "turnserver")
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
		startLabMount(t, h, []string{"DSFTP_DISCORD_TOKEN=" + tokens[n], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()},
			"--stun", tr.Servers[0], "--stun", tr.Servers[1])
	}

	took, pending := readPairs(t, homes, punchable, names, start)

	route := func(p pair) string {
		if pending[p] {
			return "FAIL"
		}
		return routeTo(homes[p.from], p.to)
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
	var punches []time.Duration
	for _, n := range names {
		for _, r := range homes[n].proc.Records("punched a QUIC path to a member") {
			punches = append(punches, r.Duration("took"))
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
	r := homes["a"].proc.WaitWhere(t, 20*time.Second, "a's record of why s cannot be reached", func(r testenv.Record) bool {
		return slices.ContainsFunc(slices.Collect(maps.Keys(r.Attrs)), func(k string) bool { return strings.Contains(r.Str(k), hint) })
	})
	t.Logf("a cannot reach s: %s %v", r.Msg, r.Attrs)

	// `dsftp peers` shows from the adverts how each member is reached
	// (once each has found that it cannot be dialed, and said so in an
	// advert re-posted at most every 10 s).
	var rows []instance.Listed
	var wrong []string
	testenv.WaitEvery(t, 40*time.Second, 200*time.Millisecond, "dsftp peers shows the punched routes", func() bool {
		rows = listPeers(t, testenv.NodeOptions{NS: homes["a"].host.NS,
			Env: []string{"DSFTP_DISCORD_TOKEN=" + tokens["a"], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}})
		wrong = nil
		for _, r := range rows {
			want := "punched"
			if r.Name == "s" {
				want = "none"
			}
			if r.Route != want {
				wrong = append(wrong, fmt.Sprintf("%s: %q; want %q", r.Name, r.Route, want))
			}
		}
		return len(rows) == len(names) && len(wrong) == 0
	})
	for _, r := range rows {
		t.Logf("dsftp peers in home a: %s route %q", r.Name, r.Route)
	}

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
