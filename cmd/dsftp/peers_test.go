//go:build linux

package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// `dsftp peers` answers within 3 s by default and lists every live LAN
// member, although the members announce only every 30 s: it asks, and
// they answer at once. --wait 5s lists them too, and --json has the
// documented shape: the peers sorted by name, then the client-only
// adverts, each with its name, fingerprint, addresses, route, source,
// client_only and last_seen.
func TestPeersAnswersAtOnce(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	alice := startLANShare(t, "alice", t.TempDir(), port)
	bob := startLANShare(t, "bob", t.TempDir(), port)
	sniff := sniffLAN(t, port)
	carol := startLANMount(t, nil, "carol", append(loopbackArgs(port), "--no-share")...)
	testenv.WaitFor(t, 30*time.Second, "the members to hear each other", func() bool {
		return slices.Contains(found(alice.proc), "bob") && slices.Contains(heardClients(alice.proc), "carol")
	})
	// Their announcements on start are over once the port is quiet; the
	// next are 30 s away.
	testenv.WaitFor(t, 10*time.Second, "the LAN port to be quiet for a second", func() bool { return sniff.quietFor() > time.Second })

	run := func(args ...string) (stdout string, took time.Duration) {
		t.Helper()
		// A race-enabled binary sleeps 1 s at exit unless told not to;
		// that second is the test's, not dsftp's.
		o := testenv.NodeOptions{Env: []string{"DSFTP_DISCORD_TOKEN=", "GORACE=atexit_sleep_ms=0"}}
		start := time.Now()
		n := runDsftp(t, o, append([]string{"peers", "--discovery", "lan", "--lan-interface", "lo", "--lan-port", strconv.Itoa(port)}, args...)...)
		took = time.Since(start)
		if n.ExitCode() != 0 {
			t.Fatalf("dsftp peers %v: exit %d\n%s", args, n.ExitCode(), n.Output)
		}
		t.Logf("dsftp peers %v took %v", args, took.Round(10*time.Millisecond))
		return n.Stdout(), took
	}

	out, took := run("--json")
	if took > 3*time.Second {
		t.Errorf("dsftp peers took %v by default; want at most 3 s", took)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("parse %s: %v", out, err)
	}
	want := []struct {
		sh     *lanShare
		name   string
		client bool
	}{{alice, "alice", false}, {bob, "bob", false}, {nil, "carol", true}}
	if len(rows) != len(want) {
		t.Fatalf("dsftp peers --json listed %d adverts, want alice, bob and the client carol:\n%s", len(rows), out)
	}
	for i, w := range want {
		r := rows[i]
		for _, k := range []string{"name", "fingerprint", "addrs", "route", "source", "client_only", "last_seen"} {
			if _, ok := r[k]; !ok {
				t.Errorf("element %d has no %q: %v", i, k, r)
			}
		}
		seen, err := time.Parse(time.RFC3339, r["last_seen"].(string))
		if r["name"] != w.name || r["source"] != "lan" || r["client_only"] != w.client || err != nil || time.Since(seen) > time.Minute {
			t.Errorf("element %d = %v, want %s from lan, client_only %v, last seen now", i, r, w.name, w.client)
		}
		if w.sh != nil && (r["fingerprint"] != w.sh.fp || r["route"] != "direct" ||
			!slices.Contains(r["addrs"].([]any), any("127.0.0.1:"+strconv.Itoa(w.sh.port)))) {
			t.Errorf("element %d = %v, want %s at 127.0.0.1:%d, route direct", i, r, w.sh.fp, w.sh.port)
		}
	}
	var typed []instance.Listed
	if err := json.Unmarshal([]byte(out), &typed); err != nil || !typed[2].ClientOnly {
		t.Errorf("the JSON does not decode into instance.Listed: %v %+v", err, typed)
	}

	// The case: a short --wait heard nobody.
	table, _ := run("--wait", "5s")
	for _, sh := range []*lanShare{alice, bob} {
		if !regexp.MustCompile(`(?m)^` + sh.name + ` +` + regexp.QuoteMeta(sh.fp) + ` `).MatchString(table) {
			t.Errorf("dsftp peers --wait 5s does not list %s:\n%s", sh.name, table)
		}
	}
	if !regexp.MustCompile(`(?m)^carol +SHA256:`).MatchString(table) {
		t.Errorf("dsftp peers --wait 5s does not list the client carol:\n%s", table)
	}
	carol.stop(t)
	alice.stop(t)
	bob.stop(t)
}
