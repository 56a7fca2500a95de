//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestNameClaimDuringRestartBinary: the real binaries on loopback. alice
// (a lasting host key in her own config directory) is killed without a
// leaving advert; while she is away a stranger announces "alice"; when
// alice runs again with the same key, a mount that knew her lists her as
// "alice" again and the stranger under a suffixed name, and alice/ reads
// alice's files.
func TestNameClaimDuringRestartBinary(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := testenv.Binary(t)
	port := testenv.FreeUDPPort(t)
	obs := startLANMount(t, nil, "observer", loopbackArgs(port)...)
	aliceCfg := t.TempDir()
	share := func(name, cfg, whoami string) *testenv.Process {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "whoami.txt"), []byte(whoami), 0o644); err != nil {
			t.Fatal(err)
		}
		p := testenv.Start(t, []string{"XDG_CONFIG_HOME=" + cfg, "DSFTP_DISCORD_TOKEN="}, bin, "share", dir, "--name", "alice",
			"--discovery", "lan", "--lan-interface", "lo", "--lan-port", strconv.Itoa(port), "--listen", "127.0.0.1:0")
		p.WaitOutput(t, "dsftp share ready on port", 30*time.Second)
		return p
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
