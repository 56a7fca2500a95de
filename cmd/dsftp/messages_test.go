//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestGetSettledAndQuiet: `dsftp get` of a peer nobody has fails as soon
// as discovery has settled, long before --wait, naming the nearest peer;
// on a terminal (script(1) gives it one) get prints its progress and
// summary but no INFO log lines.
func TestGetSettledAndQuiet(t *testing.T) {
	script := testenv.Require(t, "script")[0]
	share := t.TempDir()
	writeFile(t, share, "hello.txt", "hello\n")
	lanPort := testenv.FreeUDPPort(t)
	alice := startLANShare(t, "alice", share, lanPort)
	defer alice.stop(t)
	lan := []string{"--discovery", "lan", "--lan-interface", "lo", "--lan-port", strconv.Itoa(lanPort)}

	start := time.Now()
	g := runDsftp(t, testenv.NodeOptions{Dir: t.TempDir()}, append(append([]string{"get"}, lan...), "--wait", "10m", "alcie:hello.txt")...)
	took := time.Since(start)
	out, code := g.Text(), g.ExitCode()
	t.Logf("get alcie:hello.txt --wait 10m: exit %d after %v: %s", code, took.Round(time.Millisecond), out)
	if code != 1 || !strings.Contains(out, `did you mean "alice"?`) || !strings.Contains(out, "discovery has found every peer") {
		t.Errorf("get of an unknown peer: exit %d\n%s", code, out)
	}
	if took > 2*time.Minute {
		t.Errorf("get waited %v for a peer nobody has; discovery settles within seconds", took)
	}

	dest := t.TempDir()
	cmdline := strings.Join(append(append([]string{testenv.Binary(t), "get"}, lan...), "alice:hello.txt", dest), " ")
	cmd := exec.CommandContext(testenv.Context(t, 2*time.Minute), script, "-qec", cmdline, "/dev/null")
	cmd.Env = append(os.Environ(), "DSFTP_DISCORD_TOKEN=", "XDG_CONFIG_HOME="+t.TempDir())
	b, err := cmd.CombinedOutput()
	t.Logf("get on a terminal:\n%s", b)
	if err != nil || !strings.Contains(string(b), "hello.txt: done") {
		t.Fatalf("get on a terminal: %v\n%s", err, b)
	}
	if strings.Contains(string(b), "level=INFO") {
		t.Errorf("get on a terminal printed INFO log lines:\n%s", b)
	}
}

// TestNoSpuriousErrorOnFailedStart: a mount that fails to start (the
// Discord API is not one) says why once, and logs no ERROR about its
// share stopping.
func TestNoSpuriousErrorOnFailedStart(t *testing.T) {
	testenv.RequireFUSE(t)
	mnt := mountDir(t)
	share := t.TempDir()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("not-a-real-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := runDsftp(t, testenv.NodeOptions{Env: noToken}, "mount", mnt, "--share", share, "--listen", "127.0.0.1:0", "--discovery", "discord",
		"--token-file", token, "--discord-api", "http://127.0.0.1:1")
	if n.ExitCode() != 1 || !strings.Contains(n.Text(), "cannot reach the Discord API at http://127.0.0.1:1") {
		t.Errorf("mount with an unreachable Discord: exit %d\n%s", n.ExitCode(), n.Output)
	}
	if errs := n.Where(func(r testenv.Record) bool { return r.Level == "ERROR" }); len(errs) != 0 || n.Count("share stopped") != 0 {
		t.Errorf("a failed start logged an ERROR:\n%s", n.Output)
	}
}

// TestLANDemoPiped: `make demo | tee`, then Ctrl-C: tee dies at once, and
// the demo's cleanup, writing to a pipe nobody reads, still unmounts and
// stops every process (it used to die of SIGPIPE, leaving all running).
func TestLANDemoPiped(t *testing.T) {
	testenv.RequireFUSE(t)
	bin := testenv.Binary(t)
	root := testenv.ModuleRoot(t)
	mnt := filepath.Join(t.TempDir(), "peers")
	testenv.CleanupUnmount(t, mnt)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "testdata/demo/demo.sh"))
	cmd.Env = append(os.Environ(), "DSFTP_BIN="+bin, "DEMO_MOUNT="+mnt, "DSFTP_DISCORD_TOKEN=",
		"DEMO_LAN_PORT="+strconv.Itoa(testenv.FreeUDPPort(t)))
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var pids []int
	t.Cleanup(func() {
		for _, pid := range append(pids, cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := regexp.MustCompile(`started \w+ \(pid (\d+)\)`).FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				pids = append(pids, n)
			}
			if sc.Text() == "demo ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the demo ended before it was ready")
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the demo was not ready within 90 s")
	}
	r.Close() // tee is gone
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo after Ctrl-C with its reader gone: %v; want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30 s of Ctrl-C")
	}
	if testenv.Mounted(mnt) {
		t.Error("demo left its mount behind")
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("demo left pid %d running", pid)
		}
	}
}

// TestLogFlags: -q leaves only errors, -v adds debug lines, both at once
// is a usage error.
func TestLogFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		flag      string
		want, not string // log levels
	}{{"-q", "", "INFO"}, {"-v", "DEBUG", ""}, {"--log-level=warn", "", "INFO"}} {
		addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		p := testenv.StartNode(t, testenv.NodeOptions{}, "share", dir, "--discovery", "off", "--listen", addr, c.flag)
		testenv.WaitTCP(t, addr, 60*time.Second)
		// Every line is written once the process has ended.
		p.Stop(t, syscall.SIGTERM, 20*time.Second)
		at := func(level string) int {
			return len(p.Where(func(r testenv.Record) bool { return r.Level == level }))
		}
		if (c.want != "" && at(c.want) == 0) || (c.not != "" && at(c.not) != 0) {
			t.Errorf("share %s: output:\n%s\nwant %s lines, no %s lines", c.flag, p.Output, c.want, c.not)
		}
	}
	if n := runDsftp(t, testenv.NodeOptions{Env: noToken}, "share", dir, "-v", "-q"); n.ExitCode() != exitUsage || !strings.Contains(n.Text(), "-v and -q") {
		t.Errorf("-v -q: exit %d, %q; want exit 2", n.ExitCode(), n.Output)
	}
}
