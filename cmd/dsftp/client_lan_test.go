//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestGetAndMountNoShareOnLAN: on loopback, a `dsftp mount --no-share`
// and a `dsftp get` (both refused or without discovery before client-only
// adverts) find alice's share on the LAN and read from it. alice hears
// them as clients, never as peers, and carol's mount never lists the get.
func TestGetAndMountNoShareOnLAN(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	lanArgs := []string{"--lan-interface", "lo", "--lan-port", strconv.Itoa(port)}
	dirA := t.TempDir()
	want := writeBig(t, filepath.Join(dirA, "cat.bin"), 2)
	alice := startLANShare(t, "alice", dirA, port)

	carol := startLANMount(t, nil, "carol", append([]string{"--no-share"}, lanArgs...)...)
	carol.waitList(t, "alice")
	if got := fileSHA(t, carol.path("alice", "cat.bin")); got != want {
		t.Fatalf("carol read alice's cat.bin with sha256 %s, want %s", got, want)
	}
	if carol.proc.Count("share ready") != 0 {
		t.Error("carol started a share despite --no-share")
	}

	// No --discovery and no token: get picks the LAN (on lo only here)
	// with a notice that does not claim it shares anything.
	dest := t.TempDir()
	env := []string{"DSFTP_DISCORD_TOKEN=", "DSFTP_DISCOVERY=", "XDG_CONFIG_HOME=" + t.TempDir()}
	args := append([]string{"get", "--name", "getter", "--sha256", "--wait", "30s"}, lanArgs...)
	g := testenv.RunNode(t, testenv.NodeOptions{Env: env}, 60*time.Second, append(args, "alice:cat.bin", dest)...)
	out := g.Text()
	if g.ExitCode() != 0 {
		t.Fatalf("dsftp get over the LAN: exit %d\n%s", g.ExitCode(), g.Output)
	}
	if got := fileSHA(t, filepath.Join(dest, "cat.bin")); got != want {
		t.Fatalf("get wrote cat.bin with sha256 %s, want %s", got, want)
	}
	if !strings.Contains(out, "sha256 "+want+"  cat.bin") {
		t.Errorf("get printed no or a wrong sha256:\n%s", out)
	}
	if g.Count(instance.LANClientNotice) != 1 || g.Count(instance.LANNotice) != 0 {
		t.Errorf("get's LAN notice is missing or speaks of a share:\n%s", g.Output)
	}

	// alice heard both as clients and took neither for a peer; carol
	// heard the get but does not list it.
	testenv.WaitFor(t, 10*time.Second, "alice to log both clients", func() bool {
		h := heardClients(alice.proc)
		return slices.Contains(h, "carol") && slices.Contains(h, "getter")
	})
	if f := found(alice.proc); len(f) != 0 {
		t.Errorf("alice found peers %v on the LAN; carol and the get are clients only", f)
	}
	testenv.WaitFor(t, 10*time.Second, "carol to log the get as a client", func() bool {
		return slices.Contains(heardClients(carol.proc), "getter")
	})
	if l := carol.list(t); !slices.Equal(l, []string{"alice"}) {
		t.Errorf("carol's mount lists %v, want [alice]", l)
	}
	if _, err := os.Stat(carol.path("getter")); err == nil {
		t.Error("carol's mount has a directory for the get")
	}
	carol.stop(t)
	alice.stop(t)
}
