//go:build linux

package testenv

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tmux is a private tmux server (its own socket) running one program in a
// real pseudo-terminal, for driving interactive commands like a user.
type Tmux struct {
	t    testing.TB
	sock string
	pid  int
}

// StartTmux runs argv in a new tmux session of width×height cells, in dir.
// The pane stays after the program exits so its last screen can be read.
// The tmux server is killed by PID at cleanup.
func StartTmux(t testing.TB, dir string, width, height int, argv ...string) *Tmux {
	t.Helper()
	Require(t, "tmux")
	x := &Tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux")}
	args := []string{"new-session", "-d", "-s", "main", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), "-c", dir}
	args = append(args, strings.Join(quoteArgs(tmuxDiscoveryDefault(argv)), " "))
	x.run(args...)
	x.run("set-option", "-t", "main", "remain-on-exit", "on")
	pid, err := strconv.Atoi(strings.TrimSpace(x.run("display-message", "-p", "-t", "main", "#{pid}")))
	if err != nil {
		t.Fatalf("tmux server pid: %v", err)
	}
	x.pid = pid
	pane, err := strconv.Atoi(strings.TrimSpace(x.run("display-message", "-p", "-t", "main", "#{pane_pid}")))
	if err != nil {
		t.Fatalf("tmux pane pid: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last tmux screen:\n%s", x.Screen())
		}
		// The pane's program first, by SIGKILL: a shell hung up by its
		// server's end writes its history into dir, racing the removal
		// of the test's temporary directories.
		for _, p := range []int{pane, x.pid} {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if !Poll(10*time.Second, 20*time.Millisecond, func() bool {
			return syscall.Kill(pane, 0) == syscall.ESRCH && syscall.Kill(x.pid, 0) == syscall.ESRCH
		}) {
			t.Errorf("tmux (pid %d) or its pane's program (pid %d) still running 10 s after SIGKILL", x.pid, pane)
		}
	})
	return x
}

// tmuxDiscoveryDefault gives the program in the tmux window the same
// DSFTP_DISCOVERY=off default as Start does: tmux hands its own server's
// environment to the window, not ours, so it goes on an env(1) prefix,
// merged with one the caller already wrote.
func tmuxDiscoveryDefault(argv []string) []string {
	var env []string
	rest := argv
	if len(rest) > 0 && rest[0] == "env" {
		rest = rest[1:]
		for len(rest) > 0 && strings.Contains(rest[0], "=") && !strings.HasPrefix(rest[0], "-") {
			env = append(env, rest[0])
			rest = rest[1:]
		}
	}
	out := append([]string{"env"}, withSTUNDefault(withDiscoveryDefault(env))...)
	return append(out, rest...)
}

func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

func (x *Tmux) run(args ...string) string {
	x.t.Helper()
	cmd := exec.Command("tmux", append([]string{"-S", x.sock, "-f", "/dev/null"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Type types text literally (no key names).
func (x *Tmux) Type(text string) { x.t.Helper(); x.run("send-keys", "-t", "main", "-l", text) }

// Keys sends tmux key names: "Enter", "Tab", "C-c", "C-d".
func (x *Tmux) Keys(keys ...string) {
	x.t.Helper()
	x.run(append([]string{"send-keys", "-t", "main"}, keys...)...)
}

// Screen returns the visible screen, trailing blanks trimmed.
func (x *Tmux) Screen() string {
	out, err := exec.Command("tmux", "-S", x.sock, "capture-pane", "-p", "-t", "main").CombinedOutput()
	if err != nil {
		return "capture-pane: " + err.Error() + ": " + string(out)
	}
	return strings.TrimRight(string(out), "\n ")
}

// History returns everything the pane printed, scrollback included.
func (x *Tmux) History() string {
	out, err := exec.Command("tmux", "-S", x.sock, "capture-pane", "-p", "-J", "-S", "-", "-t", "main").CombinedOutput()
	if err != nil {
		return "capture-pane: " + err.Error()
	}
	return strings.TrimRight(string(out), "\n ")
}

// WaitScreen waits until the screen matches re and returns it.
func (x *Tmux) WaitScreen(re string, timeout time.Duration) string {
	x.t.Helper()
	rx := regexp.MustCompile(re)
	var s string
	if !Poll(timeout, 30*time.Millisecond, func() bool { s = x.Screen(); return rx.MatchString(s) }) {
		x.t.Fatalf("timed out after %v waiting for screen to match %q; screen:\n%s", timeout, re, s)
	}
	return s
}

// Dead reports whether the program in the pane has exited.
func (x *Tmux) Dead() bool {
	out, err := exec.Command("tmux", "-S", x.sock, "display-message", "-p", "-t", "main", "#{pane_dead}").Output()
	return err == nil && strings.TrimSpace(string(out)) == "1"
}
