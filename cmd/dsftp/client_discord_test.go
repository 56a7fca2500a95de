//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/discordfake"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// These tests run processes that share nothing (dsftp get, and mount with
// --no-share) against the fake Discord: they post a client-only advert,
// which lets the sharers' shares accept their key without making them
// peers.

// botWithID adds a bot to f and returns its token and user ID (for
// counting its REST writes).
func botWithID(f *fakeDiscord, name string) (token, id string) {
	token = "tok-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	id = f.AddBot(discordfake.Bot{Token: token, Name: name, MessageContent: true, Guilds: []string{f.guild}})
	return token, id
}

// names lists a mount's directory.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestGetThroughDiscord: `dsftp get alice:FILE` finds alice in the channel,
// posts a client-only advert that alice's share accepts, downloads the
// file, and deletes its advert on exit: one post and one delete. Neither
// alice's nor bob's mount ever lists the get.
func TestGetThroughDiscord(t *testing.T) {
	testenv.RequireFUSE(t)
	f := newFakeDiscord(t)
	a := startDiscordMount(t, f, f.bot(), "alice")
	b := startDiscordMount(t, f, f.bot(), "bob")
	w := watch(a, b)
	defer close(w.stop)
	testenv.WaitFor(t, 15*time.Second, "bob to list alice", func() bool {
		_, ok := w.get(w.seen, "bob", "alice")
		return ok
	})
	// The watcher records "getter" if it ever shows up in either mount.
	w.add(&discordMount{name: "getter"})

	tok, botID := botWithID(f, "getter-bot")
	dest := t.TempDir()
	start := time.Now()
	g := runDsftp(t, testenv.NodeOptions{Env: f.env(t, tok)}, "get", "--name", "getter", "--sha256", "--wait", "30s", "alice:whoami.bin", dest)
	out := g.Text()
	if g.ExitCode() != 0 {
		t.Fatalf("dsftp get: exit %d\n%s", g.ExitCode(), g.Output)
	}
	t.Logf("dsftp get through Discord took %v", time.Since(start).Round(time.Millisecond))
	got, err := os.ReadFile(filepath.Join(dest, "whoami.bin"))
	if err != nil || !bytes.Equal(got, a.content) {
		t.Fatalf("downloaded %d bytes (%v), want alice's %d", len(got), err, len(a.content))
	}
	sum := sha256.Sum256(a.content)
	if !strings.Contains(out, "sha256 "+hex.EncodeToString(sum[:])+"  whoami.bin") {
		t.Errorf("get printed no or a wrong sha256:\n%s", out)
	}
	if g.Count("advertising our client key in Discord (sharing nothing)", "name", "getter") != 1 {
		t.Errorf("get did not log that it advertised its client key:\n%s", g.Output)
	}
	// The advert is gone from the channel, and the get cost one post and
	// one delete.
	if d, id := f.advertOf("getter"); d != nil {
		t.Errorf("the get's advert %s is still in the channel", id)
	}
	if n := f.Writes()[botID]; n != 2 {
		t.Errorf("the get made %d REST writes, want 2 (post and delete)", n)
	}
	for _, o := range []string{"alice", "bob"} {
		if at, ok := w.get(w.seen, o, "getter"); ok {
			t.Errorf("%s's mount listed the get at %v", o, at)
		}
	}
	if l := names(t, b.mnt); !slices.Equal(l, []string{"alice"}) {
		t.Errorf("bob's mount lists %v, want [alice]", l)
	}
}

// TestMountNoShareThroughDiscord: `dsftp mount --no-share` with a Discord
// token (refused before client-only adverts existed) mounts alice and
// reads her file; its advert is a client-only one; the others never list
// it, and `dsftp peers` shows it only in its CLIENT table.
func TestMountNoShareThroughDiscord(t *testing.T) {
	t.Parallel()
	testenv.RequireFUSE(t)
	f := newFakeDiscord(t)
	a := startDiscordMount(t, f, f.bot(), "alice")
	b := startDiscordMount(t, f, f.bot(), "bob")
	w := watch(a, b)
	defer close(w.stop)
	w.add(&discordMount{name: "carol"})

	mnt := filepath.Join(t.TempDir(), "peers")
	os.Mkdir(mnt, 0o755)
	testenv.CleanupUnmount(t, mnt)
	c := testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, f.bot())}, "mount", mnt, "--no-share", "--name", "carol", "--timeout", "5s")
	t.Cleanup(func() {
		select {
		case <-c.Done():
		default:
			c.Cmd.Process.Signal(syscall.SIGTERM)
			c.Wait(15 * time.Second)
		}
	})
	c.WaitRecord(t, 60*time.Second, "mounted")
	testenv.WaitFor(t, 15*time.Second, "carol's mount to list alice and bob", func() bool {
		return slices.Equal(names(t, mnt), []string{"alice", "bob"})
	})
	// alice's share lets carol in once it has seen carol's advert.
	var got []byte
	testenv.WaitFor(t, 15*time.Second, "carol to read alice's file", func() bool {
		var err error
		got, err = os.ReadFile(filepath.Join(mnt, "alice", "whoami.bin"))
		return err == nil
	})
	if !bytes.Equal(got, a.content) {
		t.Fatalf("carol read %d bytes of alice's file, want %d", len(got), len(a.content))
	}
	d, _ := f.advertOf("carol")
	if d == nil || !d.Client || len(d.Addrs) != 0 || len(d.ClientKeys) != 1 {
		t.Fatalf("carol's advert: %+v, want a client-only one with one key and no addresses", d)
	}
	if c.Count("share ready") != 0 {
		t.Error("carol started a share despite --no-share")
	}
	// While carol's advert is live, the sharers list only each other.
	if l := names(t, a.mnt); !slices.Equal(l, []string{"bob"}) {
		t.Errorf("alice's mount lists %v, want [bob]", l)
	}
	if l := names(t, b.mnt); !slices.Equal(l, []string{"alice"}) {
		t.Errorf("bob's mount lists %v, want [alice]", l)
	}
	for _, o := range []string{"alice", "bob"} {
		if at, ok := w.get(w.seen, o, "carol"); ok {
			t.Errorf("%s's mount listed carol at %v", o, at)
		}
	}

	// dsftp peers: carol is a client, in a table of her own; --json lists
	// her after the peers, marked client_only.
	peersCmd := func(args ...string) string {
		n := runDsftp(t, testenv.NodeOptions{Env: f.env(t, f.bot())}, append([]string{"peers"}, args...)...)
		if n.ExitCode() != 0 {
			t.Fatalf("dsftp peers %v: exit %d\n%s", args, n.ExitCode(), n.Output)
		}
		return n.Stdout()
	}
	table := peersCmd()
	peersPart, clientPart, ok := strings.Cut(table, "\nCLIENT ")
	if !ok || !strings.Contains(clientPart, "carol") || !strings.Contains(clientPart, d.Fingerprint) ||
		strings.Contains(peersPart, "carol") || !strings.Contains(peersPart, "alice") {
		t.Errorf("dsftp peers does not show carol apart as a client:\n%s", table)
	}
	var rows []instance.Listed
	if err := json.Unmarshal([]byte(peersCmd("--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Name != "alice" || rows[1].Name != "bob" || rows[2].Name != "carol" ||
		rows[0].ClientOnly || rows[1].ClientOnly || !rows[2].ClientOnly || rows[2].Route != "none" {
		t.Errorf("dsftp peers --json: %+v, want alice and bob, then the client carol", rows)
	}

	// A clean exit deletes carol's advert; her key is refused afterwards.
	c.Cmd.Process.Signal(syscall.SIGINT)
	if _, ok := c.Wait(20 * time.Second); !ok {
		t.Fatal("carol's mount did not exit within 20 s of SIGINT")
	}
	if d, _ := f.advertOf("carol"); d != nil {
		t.Error("carol's advert is still in the channel after a clean exit")
	}
	if testenv.Mounted(mnt) {
		t.Error("carol's mount is still there")
	}
}

// TestGetNotAccepted: a share that never lets the get in (its --allow-user
// trusts only its own bot) makes get retry until --wait and then fail with
// one clear line; the advert is still deleted.
func TestGetNotAccepted(t *testing.T) {
	f := newFakeDiscord(t)
	aliceTok, aliceBot := botWithID(f, "alice-bot")
	dir := t.TempDir()
	writeFile(t, dir, "x.txt", "x")
	p := testenv.StartNode(t, testenv.NodeOptions{Env: f.env(t, aliceTok)}, "share", dir, "--listen", "127.0.0.1:0",
		"--name", "alice", "--allow-user", aliceBot)
	p.WaitRecord(t, 60*time.Second, "advertising in Discord", "name", "alice")

	tok, botID := botWithID(f, "getter-bot")
	g := testenv.RunNode(t, testenv.NodeOptions{Env: f.env(t, tok)}, 30*time.Second, "get", "--name", "getter", "--wait", "3s", "alice:x.txt", t.TempDir())
	out := g.Text()
	if g.ExitCode() != exitError || !strings.Contains(out, "peer alice did not accept our key within --wait 3s") {
		t.Fatalf("get: exit %d, want exit 1 saying alice did not accept the key:\n%s", g.ExitCode(), out)
	}
	if n := strings.Count(out, "dsftp: "); n != 1 {
		t.Errorf("%d error lines, want one:\n%s", n, out)
	}
	if d, _ := f.advertOf("getter"); d != nil {
		t.Error("the get's advert is still in the channel after it gave up")
	}
	if n := f.Writes()[botID]; n != 2 {
		t.Errorf("the get made %d REST writes, want 2 (post and delete)", n)
	}
}
