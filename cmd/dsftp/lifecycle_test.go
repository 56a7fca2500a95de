//go:build linux

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestMountSIGHUP: closing the terminal (SIGHUP) unmounts cleanly and
// exits 0, like SIGTERM; no "Transport endpoint is not connected" stays.
func TestMountSIGHUP(t *testing.T) {
	m := startModePeer(t)
	mnt := mountDir(t)
	p := m.mount(t, mnt)
	stop(t, p, mnt, syscall.SIGHUP)
	if _, err := os.ReadDir(mnt); err != nil {
		t.Errorf("mountpoint after SIGHUP: %v", err)
	}
}

// daemonPid finds the background dsftp serving mnt by its command line.
func daemonPid(mnt string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[1] == "mount" && slices.Contains(args[2:], mnt) {
			return pid
		}
	}
	return 0
}

// TestMountDaemon: --daemon returns (exit 0) only once the mount is ready
// (the peer is listed at once), from a shell that then exits; the
// background process lives on in a session of its own, logs to
// --log-file, and unmounts on SIGTERM.
func TestMountDaemon(t *testing.T) {
	m := startModePeer(t)
	mnt := mountDir(t)
	logFile := filepath.Join(t.TempDir(), "dsftp.log")
	// Not a testenv node: a shell that exits is the subject.
	args := append(append([]string{m.bin, "mount", mnt}, m.peer...), "--daemon", "--log-file", logFile, "--log-json")
	sh := exec.Command("sh", append([]string{"-c", `"$@"; echo "exit $?"; ls "$0"`, mnt}, args...)...)
	sh.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	out, err := sh.CombinedOutput()
	pid := daemonPid(mnt)
	if pid != 0 {
		t.Cleanup(func() {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		})
	}
	if err != nil || !strings.Contains(string(out), "exit 0\np\n") {
		t.Fatalf("sh -c 'dsftp mount --daemon; ls': %v\n%s; want exit 0 and the peer listed", err, out)
	}
	if pid == 0 {
		t.Fatal("no background dsftp process")
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("the background dsftp is in session %d; want its own (%d)", sid, pid)
	}
	time.Sleep(time.Second) // the shell is gone; the mount is not
	if b, err := os.ReadFile(filepath.Join(mnt, "p", "a.txt")); err != nil || string(b) != "a.txt\n" {
		t.Errorf("after the shell exited: read %q, %v", b, err)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	testenv.WaitFor(t, 20*time.Second, "the background dsftp to unmount and exit", func() bool {
		return !testenv.Mounted(mnt) && syscall.Kill(pid, 0) != nil
	})
	recs := testenv.ReadRecords(t, logFile)
	for _, want := range []string{"mounted", "unmounting"} {
		if !slices.ContainsFunc(recs, func(r testenv.Record) bool { return r.Msg == want }) {
			log, _ := os.ReadFile(logFile)
			t.Errorf("--log-file lacks %q:\n%s", want, log)
		}
	}
}

// TestMountDaemonFails: a background mount that cannot start makes
// --daemon fail with the reason, not return as if it had worked.
func TestMountDaemonFails(t *testing.T) {
	testenv.RequireFUSE(t)
	mnt := mountDir(t)
	// A taken --listen port fails after the daemon started: in the child.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	share := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "log")
	n := runDsftp(t, testenv.NodeOptions{Env: noToken}, "mount", mnt, "--daemon", "--log-file", logFile, "--discovery", "off", "--share", share, "--listen", l.Addr().String())
	out, code := n.Text(), n.ExitCode()
	if code == 0 || !strings.Contains(out, "already in use") {
		t.Errorf("--daemon with a taken port: exit %d, %q; want a failure saying the port is in use", code, out)
	}
	// Without --log-file the logs go to the system log; where there is
	// none (a container), --daemon says so instead of logging nowhere.
	if _, err := os.Stat("/dev/log"); err != nil {
		n := runDsftp(t, testenv.NodeOptions{Env: noToken}, "mount", mnt, "--daemon", "--discovery", "off", "--no-share")
		out, code := n.Text(), n.ExitCode()
		if code == 0 || !strings.Contains(out, "pass --log-file") {
			t.Errorf("--daemon without a system log: exit %d, %q; want a failure asking for --log-file", code, out)
		}
	}
	if testenv.Mounted(mnt) || daemonPid(mnt) != 0 {
		t.Errorf("a failed --daemon left a mount or a process")
	}
}

// TestMountNotify: under systemd (Type=notify, NOTIFY_SOCKET) the mount
// says READY=1 once mounted and STOPPING=1 when it stops.
func TestMountNotify(t *testing.T) {
	m := startModePeer(t)
	mnt := mountDir(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	p := testenv.StartNode(t, testenv.NodeOptions{Env: []string{"NOTIFY_SOCKET=" + sock}, Binary: m.bin}, append([]string{"mount", mnt}, m.peer...)...)
	for _, want := range []string{"READY=1", "STOPPING=1"} {
		select {
		case msg := <-got:
			if msg != want {
				t.Errorf("sd_notify: got %q, want %q", msg, want)
			}
			if msg == "READY=1" && !testenv.Mounted(mnt) {
				t.Errorf("READY=1 before the mount")
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s on NOTIFY_SOCKET within 30 s", want)
		}
		if want == "READY=1" {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if _, ok := p.Wait(20 * time.Second); !ok {
		t.Fatal("dsftp mount did not stop on SIGTERM")
	}
}

// TestVersionFromClone: `make build` in a fresh clone stamps the version
// and commit into --version and `dsftp version`, though GOFLAGS may say
// -buildvcs=false; `make install` installs the binary, man pages and
// completion.
func TestVersionFromClone(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "git", "make")
	root := testenv.ModuleRoot(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "dsftp")
	if out, err := exec.Command("git", "clone", "-q", root, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	build := exec.Command("make", "build")
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// make install: man pages and completion from the same definitions.
	dest := t.TempDir()
	install := exec.Command("make", "install", "DESTDIR="+dest, "PREFIX=/usr")
	install.Dir = clone
	install.Env = build.Env
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for file, want := range map[string]string{
		"usr/bin/dsftp": "", "usr/share/man/man1/dsftp.1": "dsftp", "usr/share/man/man1/dsftp-mount.1": "allow-non-empty",
		"usr/share/bash-completion/completions/dsftp": "__start_dsftp", "usr/share/zsh/site-functions/_dsftp": "#compdef dsftp",
		"usr/share/fish/vendor_completions.d/dsftp.fish": "complete -c dsftp",
	} {
		b, err := os.ReadFile(filepath.Join(dest, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("make install: %s: %v; want it holding %q", file, err, want)
		}
	}

	want := "commit " + strings.TrimSpace(string(head))
	for _, args := range [][]string{{"--version"}, {"version"}} {
		n := runDsftp(t, testenv.NodeOptions{Binary: filepath.Join(clone, "bin", "dsftp")}, args...)
		if out := n.Stdout(); n.ExitCode() != 0 || !strings.HasPrefix(out, "dsftp v") || !strings.Contains(out, want) {
			t.Errorf("dsftp %s: %q, exit %d; want dsftp vX… %s", args[0], n.Output, n.ExitCode(), want)
		}
	}
}

// TestMountMessagesAsUser: as a normal user, the two usual fusermount3
// failures are one line each with the fix, before anything starts. It
// runs in a mount namespace of its own, where /dev/fuse and
// /etc/fuse.conf are replaced by the test's (a device node made on a
// tmpfs), so the machine's stay untouched.
func TestMountMessagesAsUser(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.Require(t, "unshare", "setpriv", "mknod")
	bin := filepath.Join(t.TempDir(), "dsftp")
	copyFile(t, testenv.Binary(t), bin, 0o755)
	_ = os.Chmod(filepath.Dir(bin), 0o755)
	_ = os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755)
	mnt := mountDir(t)
	dev := t.TempDir()
	for _, c := range []struct {
		name, fuseMode, mountArgs, want string
	}{
		{"no access to /dev/fuse", "0600", "", "no permission to open /dev/fuse (mode 0600, uid 0, gid 0); FUSE needs it open to every user, as the fuse3 package sets it: sudo chmod 0666 /dev/fuse"},
		{"allow_other without user_allow_other", "0666", "-o allow_other", "allow_other needs user_allow_other in /etc/fuse.conf, which is not set: echo user_allow_other | sudo tee -a /etc/fuse.conf"},
		{"--allow-other without user_allow_other", "0666", "--allow-other", "allow_other needs user_allow_other in /etc/fuse.conf"},
		{"a mountpoint of root's", "0666", "", "you cannot write to mountpoint " + mnt + " (mode 0755, uid 0, gid 0), and fusermount3 mounts only where its user may write"},
	} {
		script := `set -e
mount -t tmpfs tmpfs "$1"
mknod -m "$2" "$1/fuse" c 10 229
mount --bind "$1/fuse" /dev/fuse
printf '#user_allow_other\n' > "$1/fuse.conf"
mount --bind "$1/fuse.conf" /etc/fuse.conf
exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent DSFTP_DISCORD_TOKEN= "$3" mount "$4" --no-share --discovery off $5`
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dev, c.fuseMode, bin, mnt, c.mountArgs)
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err == nil || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: %v\n%s\nwant one line with %q", c.name, err, out, c.want)
		}
	}
}
