//go:build linux

package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// writeHomeLike fills dir with what a home folder holds: an SSH key, a
// dsftp token, a .env, an ignore file, a key saved under a plain name,
// a link into .ssh, and plain files. It returns the plain files a peer
// must read and the paths it must not see at all (the key under a plain
// name and the link included), relative to dir.
func writeHomeLike(t *testing.T, dir string) (served, absent []string) {
	t.Helper()
	k := testenv.NewKey(t, t.TempDir(), "id_ed25519")
	pemKey, err := os.ReadFile(k.Path)
	if err != nil {
		t.Fatal(err)
	}
	key := string(pemKey)
	files := map[string]string{
		".ssh/id_ed25519":             key,
		".config/dsftp/discord-token": "Bot abc.def\n",
		".env":                        "PASSWORD=hunter2\n",
		".dsftpignore":                "*.tmp\n",
		"notes/backup.txt":            "old key:\n" + key,
		"notes/todo.txt":              "buy milk\n",
		"photos/cat.jpg":              strings.Repeat("meow", 1000),
		"scratch.tmp":                 "ignored\n",
	}
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(".ssh/id_ed25519", filepath.Join(dir, "k")); err != nil {
		t.Fatal(err)
	}
	return []string{"notes/todo.txt", "photos/cat.jpg"},
		[]string{"k", "notes/backup.txt", ".ssh", ".ssh/id_ed25519", ".config/dsftp/discord-token", ".env", ".dsftpignore", "scratch.tmp", "peers"}
}

// TestHomeShareRefused: `dsftp mount ~/peers` in a terminal opened in the
// home folder, where keys and tokens live. It stops with the three ways on, before mounting or serving;
// share and shell do the same; an explicit --share of the home works.
func TestHomeShareRefused(t *testing.T) {
	testenv.RequireFUSE(t)
	home := t.TempDir()
	writeHomeLike(t, home)
	mnt := filepath.Join(home, "peers")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.CleanupUnmount(t, mnt)
	o := testenv.NodeOptions{Env: []string{"HOME=" + home, "XDG_CONFIG_HOME=", "DSFTP_DISCORD_TOKEN=", "DSFTP_DISCOVERY=off"}, Dir: home}
	for _, args := range [][]string{
		{"mount", mnt},
		{"share", "--listen", "127.0.0.1:0"},
		{"shell", "--listen", "127.0.0.1:0", "--discovery", "off"},
	} {
		n := testenv.RunNode(t, o, 30*time.Second, args...)
		out, code := n.Text(), n.ExitCode()
		if code != 2 || !strings.Contains(out, "not sharing "+home+", your home folder") || !strings.Contains(out, "cd ~/Public") {
			t.Errorf("dsftp %s from the home folder: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		if args[0] != "share" && (!strings.Contains(out, "--no-share") || !strings.Contains(out, "--share ~/Public")) {
			t.Errorf("dsftp %s: the message lacks --share or --no-share:\n%s", args[0], out)
		}
		if strings.Contains(out, "Sharing") || strings.Contains(out, "listening on") || n.Count("share ready") != 0 {
			t.Errorf("dsftp %s served something before refusing:\n%s", args[0], out)
		}
		if testenv.Mounted(mnt) {
			t.Fatalf("dsftp %s left %s mounted", args[0], mnt)
		}
	}

	// Asked for explicitly, the home folder is shared, with a warning, and
	// its hidden files still are not.
	p := testenv.StartNode(t, testenv.NodeOptions{Env: []string{"HOME=" + home, "XDG_CONFIG_HOME=", "DSFTP_DISCORD_TOKEN="}},
		"mount", mnt, "--share", home, "--discovery", "off", "--listen", "127.0.0.1:0")
	p.WaitRecord(t, 30*time.Second, "mounted")
	// The warning and the banner are for the user: their words are the
	// subject here.
	out := p.Text()
	for _, want := range []string{"warning: sharing " + home + ", your home folder, as asked", "not shared    hidden files", "1 rule in .dsftpignore"} {
		if !strings.Contains(out, want) {
			t.Errorf("explicit --share of the home folder: output lacks %q:\n%s", want, out)
		}
	}
	p.Stop(t, syscall.SIGTERM, 20*time.Second)
}

// TestTwoMountsShareSafely: two `dsftp mount` with default flags on one
// machine (a network namespace of its own: the shares listen on every
// address), each sharing a home-like folder that holds its own
// mountpoint. Both start (the second on the next free port), list each
// other, read each other's plain files, and find no key, no dotfile, no
// ignored file and no way back into the mounts: find terminates with only
// the real files. Nothing in either folder changes.
func TestTwoMountsShareSafely(t *testing.T) {
	testenv.RequireFUSE(t)
	hosts := testenv.NewLAN(t, 1, testenv.LANOptions{IPv4: true})
	ns := &hosts[0]
	port := testenv.FreeUDPPort(t)
	var ms []*lanMount
	var served, absent []string
	hashes := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(filepath.Join(dir, "peers"), 0o755); err != nil {
			t.Fatal(err)
		}
		served, absent = writeHomeLike(t, dir)
		hashes[name] = dirHash(t, dir)
		// No --listen: both want port 2200.
		ms = append(ms, startLANMountIn(t, ns, name, dir, filepath.Join(dir, "peers"),
			"--lan-interface", "lo", "--lan-port", fmt.Sprint(port)))
	}
	alice, bob := ms[0], ms[1]
	alice.waitList(t, "bob")
	bob.waitList(t, "alice")

	ports := map[string]bool{}
	for _, m := range ms {
		port, _ := m.proc.ShareReady(t)
		ports[strconv.Itoa(port)] = true
	}
	t.Logf("share ports: %v", slices.Sorted(maps.Keys(ports)))
	if len(ports) != 2 || !ports["2200"] {
		t.Errorf("ports of the two default shares: %v; want 2200 and another", ports)
	}
	if !strings.Contains(bob.proc.Stdout()+alice.proc.Stdout(), "port 2200 is taken") {
		t.Errorf("neither banner says that port 2200 was taken")
	}

	for _, pair := range [][2]*lanMount{{alice, bob}, {bob, alice}} {
		m, peer := pair[0], pair[1].name
		for _, rel := range served {
			if _, err := os.ReadFile(m.path(peer, rel)); err != nil {
				t.Errorf("%s reads %s/%s: %v", m.name, peer, rel, err)
			}
		}
		for _, rel := range absent {
			if _, err := os.Lstat(m.path(peer, rel)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: lstat %s/%s: %v; want not found", m.name, peer, rel, err)
			}
		}
		ctx := testenv.Context(t, 60*time.Second)
		out, err := exec.CommandContext(ctx, "find", m.path(peer)).CombinedOutput()
		if err != nil {
			t.Errorf("%s: find %s: %v\n%s", m.name, peer, err, out)
		}
		var got []string
		for _, l := range strings.Fields(string(out)) {
			if rel := strings.TrimPrefix(strings.TrimPrefix(l, m.path(peer)), "/"); rel != "" {
				got = append(got, rel)
			}
		}
		slices.Sort(got)
		want := []string{"notes", "notes/todo.txt", "photos", "photos/cat.jpg"}
		if !slices.Equal(got, want) {
			t.Errorf("%s: find %s:\n got %q\nwant %q", m.name, peer, got, want)
		}
		t.Logf("%s: find %s finds %q", m.name, peer, got)
	}
	alice.stop(t)
	bob.stop(t)
	for _, m := range ms {
		if h := dirHash(t, filepath.Dir(m.mnt)); h != hashes[m.name] {
			t.Errorf("%s's shared folder changed", m.name)
		}
	}
}

// dirHash hashes names, modes, sizes, mtimes and contents below dir.
func dirHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d %d\n", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
