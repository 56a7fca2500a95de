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
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestTURNMatrix(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	nsenter := testenv.Require(t, "nsenter")[0]
	testenv.Require(t, "turnserver")
	bin := testenv.Binary(t)
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
		args := []string{"--net=/run/netns/" + h.host.NS, bin, "mount", h.mnt,
			"--share", h.share, "--name", n, "--timeout", "5s", "--log-level", "debug",
			"--stun", tr.Servers[0], "--stun", tr.Servers[1]}
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
		testenv.CleanupUnmount(t, h.mnt)
		h.proc = testenv.Start(t, env, nsenter, args...)
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
		for _, n := range names {
			t.Logf("home %s output:\n%s", n, homes[n].proc.Output)
		}
		t.Fatalf("pairs that never read each other: %v", pending)
	}

	routeRE := regexp.MustCompile(`msg="(?:peer reachable after failed attempts|peer reached over a punched QUIC path|peer reached over a QUIC path through a TURN relay|peer reached without dialing it[^"]*|peer reachable [^"]* now[^"]*)" peer=(\S+) (?:addr=(?:"[^"]*"|\S+) )?route=(?:"([^"]+)"|(\S+))`)
	route := func(p pair) string {
		r := "direct"
		for _, m := range routeRE.FindAllStringSubmatch(homes[p.from].proc.Output.String(), -1) {
			if m[1] == p.to {
				r = m[2] + m[3]
			}
		}
		return r
	}
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
		for _, l := range strings.Split(homes[n].proc.Output.String(), "\n") {
			if strings.Contains(l, "opened a QUIC path through a TURN relay") || strings.Contains(l, "allocated a TURN relay") {
				t.Logf("%s: %s", n, l)
			}
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
	waitUntil(t, 20*time.Second, "c's log says why z cannot be reached", func() bool {
		return strings.Contains(homes["c"].proc.Output.String(), hint)
	})

	// dsftp peers tells from the adverts which members hold a relay.
	var peersOut string
	waitUntil(t, 40*time.Second, "dsftp peers shows the turn routes", func() bool {
		out, err := testenv.RunIn(homes["c"].host.NS, 30*time.Second, "env", "DSFTP_DISCORD_TOKEN="+tokens["c"],
			"DSFTP_DISCORD_API="+api, "XDG_CONFIG_HOME="+t.TempDir(), bin, "peers")
		if err != nil {
			t.Fatalf("dsftp peers: %v\n%s", err, out)
		}
		peersOut = out
		ok := 0
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			switch {
			case f[0] == "s" && strings.Contains(l, " turn "),
				f[0] == "d" && strings.Contains(l, " punched, turn "),
				f[0] == "z" && strings.Contains(l, " none "):
				ok++
			}
		}
		return ok == 3
	})
	t.Logf("dsftp peers in home c:\n%s", peersOut)

	// A TURN server that refuses or does not answer is one warning.
	for n, want := range map[string]string{
		"c": "refused the user name or password (TURN error 401): check the USER:PASS of --turn",
		"z": "did not answer (is it running, and is UDP port 3490 open to this host?)",
	} {
		out := homes[n].proc.Output.String()
		var warnings []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "dsftp: warning: no TURN relay") {
				warnings = append(warnings, l)
			}
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], want) {
			t.Errorf("home %s warned %q; want one warning saying %q", n, warnings, want)
		} else {
			t.Logf("%s: %s", n, warnings[0])
		}
	}

	// The TURN passwords appear in no output of dsftp.
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
		h := homes[n]
		if err := h.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.proc.Wait(30 * time.Second); !ok {
			t.Fatalf("dsftp mount in home %s still running 30 s after SIGTERM", n)
		}
	}
}
