//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/share/portmap"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// consoleLines are the lines a mount may print on a terminal by default:
// the share's banner, the advertised addresses, the warnings that need
// the user (here: LAN discovery chosen for want of a Discord token), one
// "mounted at" line and one last line.
var consoleLines = []*regexp.Regexp{
	regexp.MustCompile(`^Sharing .* read-only over SFTP$`),
	regexp.MustCompile(`^  (not shared|readable by|listening on|host key|connect with) `),
	regexp.MustCompile(`^` + regexp.QuoteMeta(instance.ReadyPrefix) + `\d+$`),
	regexp.MustCompile(`^dsftp: warning: ` + regexp.QuoteMeta(instance.LANNotice) + `$`),
	regexp.MustCompile(`^Advertised addresses:$`),
	regexp.MustCompile(`^  127\.0\.0\.1:\d+ +the address the share listens on`),
	regexp.MustCompile(`^mounted at /`),
	regexp.MustCompile(`^dsftp mount stopped: /.* unmounted in \d+\.\d s$`),
}

// TestMountConsole: `dsftp mount` on a terminal, with a peer on the LAN,
// prints the banner, the LAN warning once, "mounted at X", and at Ctrl-C
// one last line; no log lines. With --log-file the terminal shows the
// same, and the file gets the INFO lines (the peer found, mounted,
// stopped).
func TestMountConsole(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := testenv.Binary(t)
	port := testenv.FreeUDPPort(t)
	dirA := t.TempDir()
	writeFile(t, dirA, "a.txt", "from alice\n")
	alice := startLANShare(t, "alice", dirA, port)
	defer alice.stop(t)

	for _, logFile := range []string{"", filepath.Join(t.TempDir(), "dsftp.log")} {
		mnt, share := mountDir(t), t.TempDir()
		// DSFTP_DISCOVERY empty: LAN discovery by default, as for a user
		// without a Discord token (on loopback only).
		argv := []string{"env", "DSFTP_DISCOVERY=", "DSFTP_DISCORD_TOKEN=", "XDG_CONFIG_HOME=" + t.TempDir(),
			bin, "mount", mnt, "--share", share, "--name", "bob", "--lan-interface", "lo", "--lan-port", strconv.Itoa(port),
			"--listen", "127.0.0.1:0"}
		if logFile != "" {
			argv = append(argv, "--log-file", logFile)
		}
		x := testenv.StartTmux(t, share, 250, 60, argv...)
		x.WaitScreen(`(?m)^mounted at `, 60*time.Second)
		testenv.WaitFor(t, 30*time.Second, "alice's file in the mount", func() bool {
			b, err := os.ReadFile(filepath.Join(mnt, "alice", "a.txt"))
			return err == nil && string(b) == "from alice\n"
		})
		x.Keys("C-c")
		testenv.WaitFor(t, 20*time.Second, "the mount to stop on Ctrl-C", x.Dead)
		var lines []string
		for _, l := range strings.Split(x.History(), "\n") {
			// ^C is the terminal's echo of the key.
			l = strings.TrimPrefix(strings.TrimRight(l, " "), "^C")
			if l != "" && !strings.HasPrefix(l, "Pane is dead") {
				lines = append(lines, l)
			}
		}
		t.Logf("terminal (--log-file %q), %d lines:\n%s", logFile, len(lines), strings.Join(lines, "\n"))
		checkConsole(t, lines, mnt)
		if logFile == "" {
			continue
		}
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`msg="found peer on the LAN"`, "msg=mounted", "msg=stopped", `level=WARN msg="no Discord token configured, so peers are found on the local network`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("--log-file lacks %q:\n%s", want, b)
			}
		}
	}
}

// checkConsole checks a mount's terminal output against consoleLines:
// nothing else, "mounted at mnt" and the warning once, the last line last.
func checkConsole(t *testing.T, lines []string, mnt string) {
	t.Helper()
	for _, l := range lines {
		ok := false
		for _, re := range consoleLines {
			ok = ok || re.MatchString(l)
		}
		if !ok {
			t.Errorf("unexpected line on the terminal: %q", l)
		}
	}
	count := func(prefix string) (n int) {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	for _, once := range []string{"mounted at " + mnt, "dsftp: warning: no Discord token", "dsftp mount stopped: "} {
		if n := count(once); n != 1 {
			t.Errorf("%q printed %d times; want once", once, n)
		}
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "dsftp mount stopped: "+mnt+" unmounted in ") {
		t.Errorf("the last line is not the mount's last line")
	}
}

// TestConsoleNotices: without a Discord token, get (which shares nothing)
// prints no notice about it, and peers says once why it listens on the
// LAN.
func TestConsoleNotices(t *testing.T) {
	script := testenv.Require(t, "script")[0]
	port := testenv.FreeUDPPort(t)
	dirA := t.TempDir()
	writeFile(t, dirA, "a.txt", "from alice\n")
	alice := startLANShare(t, "alice", dirA, port)
	defer alice.stop(t)
	lan := "--lan-interface lo --lan-port " + strconv.Itoa(port)
	dest := t.TempDir()
	for _, c := range []struct{ args, notice string }{
		{"get " + lan + " alice:a.txt " + dest, ""},
		{"peers " + lan + " --wait 1s", "no Discord token configured, so listing the peers"},
	} {
		cmd := exec.CommandContext(testenv.Context(t, time.Minute), script, "-qec", testenv.Binary(t)+" "+c.args, "/dev/null")
		cmd.Env = append(os.Environ(), "DSFTP_DISCOVERY=", "DSFTP_DISCORD_TOKEN=", "XDG_CONFIG_HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		out := string(b)
		t.Logf("dsftp %s on a terminal: %v\n%s", c.args, err, out)
		if err != nil {
			t.Errorf("dsftp %s: %v", c.args, err)
		}
		if n := strings.Count(out, "no Discord token"); (c.notice == "" && n != 0) || (c.notice != "" && (n != 1 || !strings.Contains(out, c.notice))) {
			t.Errorf("dsftp %s: the no-token notice %d times; want it %s", c.args, n, map[bool]string{true: "not at all", false: "once"}[c.notice == ""])
		}
		if strings.Contains(out, "level=") {
			t.Errorf("dsftp %s printed log lines on a terminal", c.args)
		}
	}
}

// TestLANOnlyNoUPnP: a share with LAN discovery only, listening on every
// address, does not look for a router (LAN peers dial the local address)
// and so does not warn that none answered. It runs in a namespace of its
// own, so no search leaves the test.
func TestLANOnlyNoUPnP(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	testenv.Require(t, "ip")
	ns := testenv.NewNetns(t, "lanupnp")
	p := testenv.StartNode(t, testenv.NodeOptions{NS: ns, Env: noToken}, "share", t.TempDir(),
		"--discovery", "lan", "--lan-interface", "lo", "--listen", ":0")
	p.ShareReady(t)
	p.WaitRecord(t, 10*time.Second, "UPnP port mapping is off: LAN discovery only")
	// A search for a router would give up after DiscoverTimeout and warn:
	// nothing to wait for but that time.
	time.Sleep(portmap.DefaultDiscoverTimeout + 2*time.Second)
	p.Stop(t, syscall.SIGTERM, 20*time.Second)
	warns := p.Where(func(r testenv.Record) bool { return r.Level == "WARN" && r.Str("part") == "upnp" })
	if strings.Contains(p.Text(), "UPnP port mapping failed") || len(warns) != 0 {
		t.Errorf("LAN-only share:\n%s\nwant no UPnP warning", p.Output)
	}
}
