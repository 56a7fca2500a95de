//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// alive reports whether pid runs (a zombie nobody reaps does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// listShare lists the root of the share at 127.0.0.1:port over SFTP.
func listShare(t *testing.T, port int, key ssh.Signer) []string {
	t.Helper()
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &ssh.ClientConfig{
		User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the listing is under test, not the host key
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("log in to the daemon's share: %v", err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	fis, err := sc.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range fis {
		names = append(names, fi.Name())
	}
	return names
}

// TestMountDaemonPIDAndReload: --daemon prints the background PID and
// writes it to --pid-file; SIGHUP to it keeps the mount, flushes its
// caches (a file new on the peer is listed at once) and re-reads the
// share's .dsftpignore even when the edit kept the file's size and time
// (a newly ignored file disappears); SIGTERM, with a process sitting in
// the mount holding a file open, stops it in under 2 s with a last log
// line, and removes the PID file.
func TestMountDaemonPIDAndReload(t *testing.T) {
	m := startModePeer(t)
	mnt := mountDir(t)
	tmp := t.TempDir()
	share := filepath.Join(tmp, "mine")
	for _, f := range []string{"keep.txt", "secret.txt"} {
		writeFile(t, share, f, f+"\n")
	}
	ignore := filepath.Join(share, ".dsftpignore")
	writeFile(t, share, ".dsftpignore", "nothing.tx\n")
	fi, err := os.Stat(ignore)
	if err != nil {
		t.Fatal(err)
	}
	reader := testenv.NewKey(t, tmp, "reader")
	port := testenv.FreePort(t)
	pidFile, logFile := filepath.Join(tmp, "dsftp.pid"), filepath.Join(tmp, "dsftp.log")
	args := append([]string{"mount", mnt}, slices.DeleteFunc(slices.Clone(m.peer), func(a string) bool { return a == "--no-share" })...)
	args = append(args, "--share", share, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--authorized-keys", reader.Path+".pub",
		"--daemon", "--pid-file", pidFile, "--log-file", logFile)
	n := runDsftp(t, testenv.NodeOptions{Env: noToken, Binary: m.bin}, args...)
	out := n.Text()
	t.Logf("dsftp mount --daemon --pid-file: exit %d\n%s", n.ExitCode(), n.Output)
	pid := daemonPid(mnt)
	if pid != 0 {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	if n.ExitCode() != 0 || pid == 0 {
		t.Fatalf("--daemon: exit %d, pid %d", n.ExitCode(), pid)
	}
	// The PID is told to the user: its line is the subject here.
	if m := regexp.MustCompile(`as pid (\d+)`).FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(pid) {
		t.Errorf("--daemon printed %q; want the background PID %d", out, pid)
	}
	if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Errorf("--pid-file holds %q (%v); want %d", b, err, pid)
	}

	// Cache a listing of the peer, then add a file to it.
	peerDir := filepath.Join(mnt, "p")
	if _, err := os.ReadDir(peerDir); err != nil {
		t.Fatal(err)
	}
	listed := time.Now()
	writeFile(t, m.dir, "new.txt", "new\n")
	if names := listShare(t, port, reader.Signer); !slices.Contains(names, "secret.txt") {
		t.Fatalf("the daemon's share lists %q; want secret.txt before it is ignored", names)
	}
	// The same size and time: the once-a-second check sees no change.
	if err := os.WriteFile(ignore, []byte("secret.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(ignore, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logged := func(msg string) []testenv.Record {
		return slices.DeleteFunc(testenv.ReadRecords(t, logFile), func(r testenv.Record) bool { return r.Msg != msg })
	}
	testenv.WaitFor(t, 10*time.Second, "the daemon to log its reload", func() bool { return len(logged("reloaded")) > 0 })
	ents, err := os.ReadDir(peerDir)
	if err != nil {
		t.Fatalf("the mount after SIGHUP: %v", err)
	}
	if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == "new.txt" }) {
		t.Errorf("after SIGHUP, %v after the listing was cached, the peer's new file is not listed: %v", time.Since(listed).Round(time.Millisecond), ents)
	}
	if names := listShare(t, port, reader.Signer); slices.Contains(names, "secret.txt") || !slices.Contains(names, "keep.txt") {
		t.Errorf("after SIGHUP the daemon's share lists %q; want keep.txt and not the newly ignored secret.txt", names)
	}
	if !alive(pid) || !testenv.Mounted(mnt) {
		t.Fatalf("SIGHUP stopped the daemon (alive %v, mounted %v)", alive(pid), testenv.Mounted(mnt))
	}

	// A long-running mount in use: a shell in the peer's directory with a
	// file open.
	holder := exec.Command("sh", "-c", "exec sleep 600 < a.txt")
	holder.Dir = peerDir
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	testenv.WaitFor(t, 10*time.Second, "sleep to have the file open", func() bool {
		fd, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", holder.Process.Pid))
		return fd == filepath.Join(peerDir, "a.txt")
	})
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the daemon to exit on SIGTERM", func() bool { return !alive(pid) })
	took := time.Since(start)
	stopped := logged("stopped")
	if len(stopped) == 0 {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("no last line (stopped) in the log:\n%s", log)
	}
	t.Logf("stop with the mount in use: %v (the daemon logged %v)", took.Round(time.Millisecond), stopped[0].Duration("took"))
	if took >= 2*time.Second {
		t.Errorf("the daemon took %v to stop; want under 2 s", took)
	}
	if testenv.Mounted(mnt) {
		t.Error("still mounted after SIGTERM")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("--pid-file left behind: %v", err)
	}
}
