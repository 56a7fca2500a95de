//go:build linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// The shell finds peers through (the fake) Discord: it answers while
// discovery settles, lists, connects to and downloads from a discovered
// share, says so when that peer leaves, and removes its own advert at exit.
func TestShellFindsPeersThroughDiscord(t *testing.T) {
	bin := testenv.Binary(t)
	f := newFakeDiscord(t)
	tokA, tokS := f.bot(), f.bot()
	dirA := t.TempDir()
	os.WriteFile(filepath.Join(dirA, "hello world.txt"), []byte("hello from alice\n"), 0o644)
	alice, _ := startDiscordShare(t, f, tokA, "alice", dirA)

	dl := t.TempDir()
	argv := append([]string{"env"}, f.env(t, tokS)...)
	argv = append(argv, bin, "shell", "--listen", "127.0.0.1:0", "--name", "me")
	x := testenv.StartTmux(t, dl, 140, 40, argv...)
	x.WaitScreen(`(?m)^dsftp>`, 60*time.Second)
	if !strings.Contains(x.Screen(), "Finding peers through Discord") {
		t.Fatalf("no discovery note in the banner:\n%s", x.Screen())
	}
	s := &shellSession{t: t, x: x}

	// The first answer comes before discovery has settled, and says so.
	s.expect("list_peers", `\(discovery is still running: more peers may still arrive\)`)
	aliceRow := regexp.MustCompile(`(?m)^  alice +127\.0\.0\.1:\d+ +discord +SHA256:\S+$`)
	s.waitPeer(aliceRow)

	s.complete("connect al", "dsftp> connect alice ")
	n := s.prompts()
	x.Keys("Enter")
	// Alice lets us in once she has seen our advert: until then connect
	// says so, and trying again works.
	var out string
	if !testenv.Poll(60*time.Second, 500*time.Millisecond, func() bool {
		out = s.waitPrompt(n+1, 30*time.Second)
		if strings.Contains(out, "connected to alice") {
			return true
		}
		if !strings.Contains(out, "did not accept our key (yet)") {
			t.Fatalf("connect alice:\n%s", out)
		}
		n = s.prompts()
		x.Type("connect alice")
		x.Keys("Enter")
		return false
	}) {
		t.Fatalf("connect alice:\n%s", out)
	}
	s.expect("ls", `(?m)^hello world\.txt$`)
	s.expect(`get "hello world.txt"`, `hello world\.txt: done, 17 B`)
	if b, _ := os.ReadFile(filepath.Join(dl, "hello world.txt")); string(b) != "hello from alice\n" {
		t.Fatalf("downloaded %q", b)
	}

	// Alice leaves: her advert goes, and the shell says she is gone.
	alice.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := alice.Wait(15 * time.Second); !ok {
		t.Fatal("alice's share did not stop")
	}
	gone := regexp.MustCompile(`error: ls: .*peer alice is gone \(it stopped advertising\)`)
	if !testenv.Poll(60*time.Second, 500*time.Millisecond, func() bool { out = s.run("ls"); return gone.MatchString(out) }) {
		t.Fatalf("ls after alice left:\n%s", out)
	}
	if out := s.run("list_peers"); strings.Contains(out, "alice") {
		t.Fatalf("alice still listed after leaving:\n%s", out)
	}
	if d, _ := f.advertOf("me"); d == nil {
		t.Fatal("the shell did not advertise itself")
	}

	x.Keys("C-d")
	testenv.WaitFor(t, 15*time.Second, "the shell to exit", x.Dead)
	testenv.WaitFor(t, 15*time.Second, "the shell's advert to be deleted", func() bool { d, _ := f.advertOf("me"); return d == nil })
}
