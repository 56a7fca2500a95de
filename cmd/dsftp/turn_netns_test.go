//go:build linux

package main

// TURN, the last resort: four homes on the simulated internet whose
// routers map no port and drop unsolicited packets. s and z sit behind
// symmetric NATs (nobody punches through to them), c and d behind plain
// NAT. s (--turn) and d ($DSFTP_TURN) hold relays on the lab's coturn;
// c and z have none. Every pair with a relay on either side reads each
// other's share over QUIC through that relay (route turn): s and c (the
// relay on the symmetric side), z and d (on the plain side), s and d
// (both), s and z (both symmetric). c and d punch as before. z and c have
// no relay and cannot punch: the error says so and what would help. c's
// --turn has a wrong password and z's names a port where no TURN server
// listens: one warning each, and everything else works.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestTURNMatrix(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	testenv.Require(t, "nsenter", "turnserver")
	fake := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	in := testenv.NewInternet(t)
	tr := in.StartTURN(t)
	turnURL := fmt.Sprintf("turn://%s:%s@%s", tr.User, tr.Pass, tr.Servers[0])
	wrongPass := fmt.Sprintf("wrong%d", os.Getpid())
	// Bytes arriving at coturn's relay ports (testenv: min-port..max-port):
	// what peers send to a relayed address.
	for _, cmd := range [][]string{
		{"add", "table", "inet", "turnlab"},
		{"add", "counter", "inet", "turnlab", "relayed"},
		{"add", "chain", "inet", "turnlab", "in", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "turnlab", "in", "udp", "dport", "49152-49999", "counter", "name", "relayed"},
	} {
		testenv.MustRunIn(t, in.NS, "nft", cmd...)
	}
	relayedBytes := func() int64 {
		out := testenv.MustRunIn(t, in.NS, "nft", "list", "counter", "inet", "turnlab", "relayed")
		m := regexp.MustCompile(`bytes (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("nft counter: %q", out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}

	names := []string{"c", "d", "s", "z"}
	opts := map[string]testenv.HomeOptions{"s": {Symmetric: true}, "z": {Symmetric: true}}
	for _, n := range names {
		o := opts[n]
		o.NoPortMapping, o.DropUnsolicited = true, true
		opts[n] = o
	}
	tokens, api := startLabDiscord(t, in, fake, names)
	homes := newLabHomes(t, in, names, opts)
	big := make([]byte, 32<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	if err := os.WriteFile(filepath.Join(homes["c"].share, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	for _, n := range names {
		h := homes[n]
		env := []string{"DSFTP_DISCORD_TOKEN=" + tokens[n], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}
		args := []string{"--stun", tr.Servers[0], "--stun", tr.Servers[1]}
		switch n {
		case "s":
			args = append(args, "--turn", turnURL)
		case "d":
			env = append(env, "DSFTP_TURN="+turnURL)
		case "c":
			args = append(args, "--turn", fmt.Sprintf("turn://%s:%s@%s", tr.User, wrongPass, tr.Servers[0]))
		case "z":
			// coturn answers on 3478 and 3479 (RFC 5780's other port).
			args = append(args, "--turn", "turn://u:"+wrongPass+"@"+testenv.SecondAddr+":3490")
		}
		startLabMount(t, h, env, args...)
	}

	took, pending := readPairs(t, homes, []string{"s", "c", "d"}, names, start)
	took2, pending2 := readPairs(t, homes, []string{"z", "d", "s"}, names, start)
	for p, d := range took2 {
		if _, ok := took[p]; !ok {
			took[p] = d
		}
	}
	for p := range pending2 {
		pending[p] = true
	}
	if len(pending) > 0 {
		t.Fatalf("pairs that never read each other: %v", pending)
	}

	route := func(p pair) string { return routeTo(homes[p.from], p.to) }
	var rows []string
	for p, d := range took {
		want := "turn"
		if (p.from == "c" && p.to == "d") || (p.from == "d" && p.to == "c") {
			want = "punched"
		}
		got := route(p)
		rows = append(rows, fmt.Sprintf("%s→%s: %s after %v", p.from, p.to, got, d.Round(100*time.Millisecond)))
		if got != want {
			t.Errorf("%s→%s went %q; want %q", p.from, p.to, got, want)
		}
	}
	sort.Strings(rows)
	t.Logf("first reads since the start:\n%s", strings.Join(rows, "\n"))
	for _, n := range []string{"s", "d"} {
		for _, r := range homes[n].proc.Where(func(r testenv.Record) bool {
			return strings.HasPrefix(r.Msg, "opened a QUIC path through a TURN relay") || r.Msg == "allocated a TURN relay"
		}) {
			t.Logf("%s: %s %v", n, r.Msg, r.Attrs)
		}
	}

	// 32 MiB from c: d over the punched path, s through s's relay.
	readBig := func(from string) float64 {
		t0 := time.Now()
		got, err := os.ReadFile(filepath.Join(homes[from].mnt, "c", "big.bin"))
		if err != nil {
			t.Fatalf("%s reads c's big.bin: %v", from, err)
		}
		secs := time.Since(t0).Seconds()
		if sha256.Sum256(got) != sha256.Sum256(big) {
			t.Fatalf("%s read %d bytes of c's big.bin, not its content", from, len(got))
		}
		return float64(len(got)) / (1 << 20) / secs
	}
	punched := readBig("d")
	before := relayedBytes()
	relayed := readBig("s")
	through := relayedBytes() - before
	t.Logf("32 MiB from c: %.1f MiB/s punched (d), %.1f MiB/s through TURN (s); coturn's relay ports received %.1f MiB meanwhile", punched, relayed, float64(through)/(1<<20))
	if through < int64(len(big)) {
		t.Errorf("coturn's relay ports received %d bytes while s read %d through its relay", through, len(big))
	}

	// z and c: no relay on either side, no punching through z's NAT.
	if _, err := os.ReadFile(filepath.Join(homes["c"].mnt, "z", "whoami.txt")); err == nil {
		t.Fatal("c read z's file with no relay and a symmetric NAT between them")
	}
	hint := "symmetric NAT on one side: add --turn (a TURN server) on either, or open a port on one of them (a port forward on the router)"
	homes["c"].proc.WaitWhere(t, 20*time.Second, "c's record of why z cannot be reached", func(r testenv.Record) bool {
		return slices.ContainsFunc(slices.Collect(maps.Keys(r.Attrs)), func(k string) bool { return strings.Contains(r.Str(k), hint) })
	})

	// dsftp peers tells from the adverts which members hold a relay.
	wantRoute := map[string]string{"s": "turn", "d": "punched, turn", "z": "none"}
	var peersOut string
	testenv.WaitFor(t, 40*time.Second, "dsftp peers shows the turn routes", func() bool {
		n := runDsftp(t, testenv.NodeOptions{NS: homes["c"].host.NS, NetOnly: true,
			Env: []string{"DSFTP_DISCORD_TOKEN=" + tokens["c"], "DSFTP_DISCORD_API=" + api, "XDG_CONFIG_HOME=" + t.TempDir()}},
			"peers", "--json")
		if n.ExitCode() != 0 {
			t.Fatalf("dsftp peers --json: exit %d\n%s", n.ExitCode(), n.Output)
		}
		peersOut = n.Output.String()
		var rows []instance.Listed
		if err := json.Unmarshal([]byte(n.Stdout()), &rows); err != nil {
			t.Fatalf("parse dsftp peers --json %q: %v", n.Stdout(), err)
		}
		ok := 0
		for _, r := range rows {
			if want, found := wantRoute[r.Name]; found && r.Route == want {
				ok++
			}
		}
		return ok == len(wantRoute)
	})
	t.Logf("dsftp peers --json in home c:\n%s", peersOut)

	// A TURN server that refuses or does not answer is one warning.
	for n, want := range map[string]string{
		"c": "refused the user name or password (TURN error 401): check the USER:PASS of --turn",
		"z": "did not answer (is it running, and is UDP port 3490 open to this host?)",
	} {
		warnings := homes[n].proc.Records("no TURN relay")
		if len(warnings) != 1 || warnings[0].Level != "WARN" || !strings.Contains(warnings[0].Str("err"), want) {
			t.Errorf("home %s warned %v; want one warning saying %q", n, warnings, want)
		} else {
			t.Logf("%s: %s: %s", n, warnings[0].Msg, warnings[0].Str("err"))
		}
	}

	// The TURN passwords appear in no output of dsftp (all of it: the
	// subject here is the text itself).
	for _, n := range names {
		out := homes[n].proc.Output.String()
		if strings.Contains(out, tr.Pass) || strings.Contains(out, wrongPass) {
			t.Errorf("home %s's output shows a TURN password", n)
		}
	}
	if strings.Contains(peersOut, tr.Pass) {
		t.Error("dsftp peers shows the TURN password")
	}

	for _, n := range names {
		_ = homes[n].proc.Stop(t, syscall.SIGTERM, 30*time.Second)
	}
}
