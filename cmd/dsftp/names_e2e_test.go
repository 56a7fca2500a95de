//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// shareDir makes a folder holding whoami.txt.
func shareDir(t *testing.T, name, whoami string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "whoami.txt"), []byte(whoami), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startLANNameShare runs `dsftp share` on loopback LAN discovery as name,
// with its host key in cfg (the same cfg: the same key across runs).
func startLANNameShare(t *testing.T, port int, name, cfg, whoami string) *testenv.Node {
	t.Helper()
	p := testenv.StartNode(t, testenv.NodeOptions{Env: []string{"XDG_CONFIG_HOME=" + cfg, "DSFTP_DISCORD_TOKEN="}}, "share", shareDir(t, name, whoami), "--name", name,
		"--discovery", "lan", "--lan-interface", "lo", "--lan-port", strconv.Itoa(port), "--listen", "127.0.0.1:0")
	p.ShareReady(t)
	return p
}

// startDiscordNameShare runs `dsftp share` against f as name, with its
// host key in cfg.
func startDiscordNameShare(t *testing.T, f *fakeDiscord, token, name, cfg, whoami string) *testenv.Node {
	t.Helper()
	env := append(f.env(t, token), "XDG_CONFIG_HOME="+cfg) // the last one wins
	p := testenv.StartNode(t, testenv.NodeOptions{Env: env}, "share", shareDir(t, name, whoami), "--listen", "127.0.0.1:0", "--name", name)
	p.WaitRecord(t, 60*time.Second, "advertising in Discord", "name", name)
	return p
}

// stateDir is the $XDG_STATE_HOME a started process was given.
func stateDir(t *testing.T, p *testenv.Node) string {
	t.Helper()
	dir := ""
	for _, kv := range p.Cmd.Env {
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatal("the process has no XDG_STATE_HOME")
	}
	return dir
}

// knownNames reads a known_names file: name -> key.
func knownNames(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read known names: %v", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if parts := strings.Split(sc.Text(), "\t"); len(parts) == 3 {
			out[parts[0]] = parts[1]
		}
	}
	return out
}

// stopAndWaitGone stops a share like Ctrl-C (it says it leaves) and waits
// until the mount no longer lists name.
func stopAndWaitGone(t *testing.T, p *testenv.Node, m interface{ names(*testing.T) []string }, name string) {
	t.Helper()
	p.Stop(t, syscall.SIGINT, 20*time.Second)
	testenv.WaitFor(t, 30*time.Second, name+" to leave", func() bool { return !slices.Contains(m.names(t), name) })
}

func (m *lanMount) names(t *testing.T) []string     { return m.list(t) }
func (m *discordMount) names(t *testing.T) []string { return names(t, m.mnt) }

// claimAfterFlood is the end of both flood tests: a stranger claims
// name while its owner is away, then the owner (the same key, in
// ownerCfg) comes back. The owner must be listed as name, reading its
// files, the stranger under a suffix, and the mount's known_names must
// still give name to the owner's key.
func claimAfterFlood(t *testing.T, m interface {
	names(*testing.T) []string
}, mnt func(...string) string, state, name, ownerID string, start func(name, cfg, whoami string) *testenv.Node, ownerCfg string, floodOrigins int) {
	t.Helper()
	start(name, t.TempDir(), "I am mallory, claiming "+name+"\n")
	var stranger string
	testenv.WaitFor(t, 30*time.Second, "the stranger to be listed", func() bool {
		for _, n := range m.names(t) {
			if n != name && !strings.HasPrefix(n, name+"-") {
				continue
			}
			if b, err := os.ReadFile(mnt(n, "whoami.txt")); err == nil && strings.Contains(string(b), "mallory") {
				stranger = n
				return true
			}
		}
		return false
	})
	t.Logf("after the flood the stranger claiming %q is listed as %q", name, stranger)
	if stranger == name {
		t.Errorf("the stranger holds %q while its owner is away", name)
	}

	book := knownNames(t, filepath.Join(state, "dsftp", "known_names"))
	flood := 0
	for n := range book {
		if strings.HasPrefix(n, "flood-") {
			flood++
		}
	}
	t.Logf("known_names holds %d names, %d of them from the flood; %q is %q's", len(book), flood, name, book[name])
	if book[name] != ownerID {
		t.Errorf("known_names gives %q to %q, want the owner %s", name, book[name], ownerID)
	}
	if len(book) > peers.MaxKnownNames {
		t.Errorf("known_names holds %d names, more than %d", len(book), peers.MaxKnownNames)
	}
	if flood > floodOrigins*peers.MaxNewNamesPerOrigin {
		t.Errorf("known_names took %d flood names from %d origins, more than %d each", flood, floodOrigins, peers.MaxNewNamesPerOrigin)
	}

	start(name, ownerCfg, "I am "+name+"\n")
	var last string
	testenv.WaitFor(t, 30*time.Second, name+" back under its name, reading its files", func() bool {
		names := m.names(t)
		b, err := os.ReadFile(mnt(name, "whoami.txt"))
		last = fmt.Sprintf("names %d, %s/whoami.txt %q %v", len(names), name, b, err)
		return err == nil && string(b) == "I am "+name+"\n"
	})
	t.Logf("after the owner's restart: %s", last)
	if b, err := os.ReadFile(mnt(stranger, "whoami.txt")); err != nil || !strings.Contains(string(b), "mallory") {
		t.Errorf("%s/whoami.txt = %q, %v; want the stranger's", stranger, b, err)
	}
	if book := knownNames(t, filepath.Join(state, "dsftp", "known_names")); book[name] != ownerID {
		t.Errorf("after the owner's restart known_names gives %q to %q, want %s", name, book[name], ownerID)
	}
}

// TestNameClaimDuringRestartBinary: the real binaries on loopback. alice
// (a lasting host key in her own config directory) is killed without a
// leaving advert; while she is away a stranger announces "alice"; when
// alice runs again with the same key, a mount that knew her lists her as
// "alice" again and the stranger under a suffixed name, and alice/ reads
// alice's files.
func TestNameClaimDuringRestartBinary(t *testing.T) {
	testenv.RequireFUSE(t)
	port := testenv.FreeUDPPort(t)
	obs := startLANMount(t, nil, "observer", loopbackArgs(port)...)
	aliceCfg := t.TempDir()
	share := func(name, cfg, whoami string) *testenv.Node {
		return startLANNameShare(t, port, "alice", cfg, whoami)
	}
	alice := share("alice", aliceCfg, "I am alice\n")
	obs.waitList(t, "alice")
	_ = alice.Cmd.Process.Signal(syscall.SIGKILL) // no leaving advert: her advert goes stale
	alice.Wait(10 * time.Second)

	share("mallory", t.TempDir(), "I am mallory, claiming alice\n")
	var stranger string
	testenv.WaitFor(t, 30*time.Second, "the stranger to be listed under a suffixed name", func() bool {
		for _, n := range obs.list(t) {
			if strings.HasPrefix(n, "alice-") {
				stranger = n
				return true
			}
		}
		return false
	})

	share("alice-again", aliceCfg, "I am alice\n") // the same key: her config directory
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last look: %s\nobserver output:\n%s", last, obs.proc.Output.String())
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "alice back under her name, reading her files", func() bool {
		names := obs.list(t)
		b, err := os.ReadFile(obs.path("alice", "whoami.txt"))
		last = fmt.Sprintf("names %v, alice/whoami.txt %q %v", names, b, err)
		return slices.Contains(names, "alice") && slices.Contains(names, stranger) && err == nil && string(b) == "I am alice\n"
	})
	if b, err := os.ReadFile(obs.path(stranger, "whoami.txt")); err != nil || !strings.Contains(string(b), "mallory") {
		t.Errorf("%s/whoami.txt = %q, %v; want the stranger's", stranger, b, err)
	}
	t.Logf("after the restart the observer lists %v", obs.list(t))
	obs.stop(t)
}

// TestNameFloodDiscordBinary: one bot posts 1,100 validly signed adverts
// with fresh keys while alice is away; then another bot claims "alice",
// and alice comes back with her key. The flood must not push alice out
// of the observer's known_names: she gets "alice" back, the stranger a
// suffix, and the file still gives "alice" to her key.
func TestNameFloodDiscordBinary(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	f := newFakeDiscord(t)
	obs := startDiscordMount(t, f, f.bot(), "observer")
	aliceCfg := t.TempDir()
	alice := startDiscordNameShare(t, f, f.bot(), "alice", aliceCfg, "I am alice\n")
	adv, _ := f.advertOf("alice")
	if adv == nil {
		t.Fatal("no advert of alice in the channel")
	}
	testenv.WaitFor(t, 30*time.Second, "the observer to list alice", func() bool { return slices.Contains(obs.names(t), "alice") })
	stopAndWaitGone(t, alice, obs, "alice")

	const flood = 1100
	tokFlood := f.bot()
	start := time.Now()
	for i := range flood {
		now := time.Now()
		text, err := advert.Encode(advert.Advert{
			Name: fmt.Sprintf("flood-%d", i), Addrs: []string{"127.0.0.1:9"}, Guild: f.guild, Channel: f.channel,
			Instance: advert.NewInstance(), Seq: 1, Issued: now.Unix(), Expires: now.Add(10 * time.Minute).Unix(),
		}, testenv.NewSigner(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Post(tokFlood, f.channel, text); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("posted %d adverts with fresh keys from one bot in %v", flood, time.Since(start).Round(time.Millisecond))
	testenv.WaitFor(t, 60*time.Second, "the observer to take in the flood", func() bool {
		n := 0
		for _, name := range obs.names(t) {
			if strings.HasPrefix(name, "flood-") {
				n++
			}
		}
		return n == flood
	})

	claimAfterFlood(t, obs, func(p ...string) string { return filepath.Join(append([]string{obs.mnt}, p...)...) },
		stateDir(t, obs.proc), "alice", adv.Fingerprint, func(name, cfg, whoami string) *testenv.Node {
			return startDiscordNameShare(t, f, f.bot(), name, cfg, whoami)
		}, aliceCfg, 1)
}

// TestNameFloodLANBinary: while lanalice is away, 100 loopback addresses
// send validly signed LAN adverts with fresh, short-lived keys until the
// observer has taken in 1,100 of them (each address stays under the LAN
// caps; the keys expire and make room for more); then a stranger claims
// "lanalice", and lanalice comes back with her key. The flood must not
// push lanalice out of the observer's known_names.
func TestNameFloodLANBinary(t *testing.T) {
	testenv.RequireFUSE(t)
	port := testenv.FreeUDPPort(t)
	// Debug lines are not summed up by the log limiter: each newcomer
	// shows (the flood's Info lines are).
	obs := startLANMount(t, nil, "observer", append(loopbackArgs(port), "--log-level", "debug")...)
	aliceCfg := t.TempDir()
	alice := startLANNameShare(t, port, "lanalice", aliceCfg, "I am lanalice\n")
	obs.waitList(t, "lanalice")
	aliceID := obs.proc.WaitRecord(t, 10*time.Second, "found peer on the LAN", "name", "lanalice").Str("id")
	if aliceID == "" {
		t.Fatalf("the observer did not log lanalice's key:\n%s", obs.proc.Output)
	}
	stopAndWaitGone(t, alice, obs, "lanalice")

	const sources, want = 100, 1100
	accepted := func() int {
		return len(obs.proc.Where(func(r testenv.Record) bool {
			return r.Msg == "new LAN peer" && strings.HasPrefix(r.Str("name"), "flood-")
		}))
	}
	bcast := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: port}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent sync.Map
	for s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(10+s))})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					sent.Store(s, i)
					return
				case <-time.After(50 * time.Millisecond): // a flood the rate limit lets through, not a burst it drops
				}
				codec := lan.NewAdvertCodec(testenv.NewSigner(nil), fmt.Sprintf("flood-%d-%d", s, i), "dsftp", nil)
				codec.SetAddrs([]string{"127.0.0.1:1"})
				msg, err := codec.Encode(2 * time.Second) // short-lived: room for more under the LAN caps
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.WriteToUDP(msg, bcast); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	start := time.Now()
	testenv.WaitFor(t, 120*time.Second, fmt.Sprintf("the observer to take in %d flood keys", want), func() bool { return accepted() >= want })
	close(stop)
	wg.Wait()
	total := 0
	sent.Range(func(_, v any) bool { total += v.(int); return true })
	t.Logf("%d adverts with fresh keys from %d addresses in %v; the observer took in %d", total, sources, time.Since(start).Round(time.Millisecond), accepted())
	// Let the flood drain (its keys expire), so that the stranger's one
	// advert is not lost in the backlog.
	testenv.WaitFor(t, 30*time.Second, "the flood keys to expire", func() bool {
		return !slices.ContainsFunc(obs.list(t), func(n string) bool { return strings.HasPrefix(n, "flood-") })
	})

	claimAfterFlood(t, obs, obs.path, stateDir(t, obs.proc), "lanalice", aliceID, func(name, cfg, whoami string) *testenv.Node {
		return startLANNameShare(t, port, name, cfg, whoami)
	}, aliceCfg, sources)
	obs.stop(t)
}
