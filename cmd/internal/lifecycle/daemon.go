package lifecycle

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// childEnv marks the background process that --daemon starts; its value
// is the number of the descriptor on which it reports readiness.
const childEnv = "DSFTP_DAEMON_READY_FD"

// readyWait bounds how long --daemon waits for the mount: a start that
// hangs (a frozen Discord, a stuck fusermount3) must not hang the shell.
const readyWait = 2 * time.Minute

// IsDaemonChild reports whether this process is the background half of
// --daemon.
func IsDaemonChild() bool { return os.Getenv(childEnv) != "" }

// Daemonize is rclone's --daemon: it starts this same command again in
// the background, in a session of its own (so closing the terminal does
// not reach it), with stdin, stdout and stderr on /dev/null or the
// --log-file, and returns once that process reports its mount ready, or
// with the error it failed with.
func Daemonize(logFile string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for --daemon: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon pipe: %w", err)
	}
	defer r.Close()
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if logFile != "" {
		out, err = os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	}
	if err != nil {
		w.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=3")
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = out, out, []*os.File{w}
	if cmd.SysProcAttr, err = detached(); err != nil {
		w.Close()
		return err
	}
	cmd.Dir = "/"
	if wd, err := os.Getwd(); err == nil {
		cmd.Dir = wd // the share defaults to the working directory
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start background dsftp: %w", err)
	}
	w.Close()
	return awaitChild(cmd, r)
}

// awaitChild reads the child's one report: "ready" or "error: …".
func awaitChild(cmd *exec.Cmd, r *os.File) error {
	_ = r.SetReadDeadline(time.Now().Add(readyWait))
	line, rerr := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ready":
		pid := cmd.Process.Pid
		_ = cmd.Process.Release()
		fmt.Printf("dsftp is running in the background as pid %d (stop it with: kill %d)\n", pid, pid)
		return nil
	case strings.HasPrefix(line, "error: "):
		_ = cmd.Wait()
		return errors.New(strings.TrimPrefix(line, "error: "))
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		return fmt.Errorf("the background dsftp (pid %d) was not ready within %v; it keeps trying: see its log, or stop it with kill %d", cmd.Process.Pid, readyWait, cmd.Process.Pid)
	}
	werr := cmd.Wait()
	return fmt.Errorf("the background dsftp exited before its mount was ready (%v); run without --daemon to see why", werr)
}

// Ready says the mount is up: to the --daemon parent, which then
// returns, and to systemd (Type=notify; nothing without NOTIFY_SOCKET).
func Ready() {
	if f := reportFile(); f != nil {
		fmt.Fprintln(f, "ready")
		f.Close()
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
}

// WritePIDFile writes this process's PID to path, for scripts and init
// systems; the function it returns removes the file again.
func WritePIDFile(path string) (remove func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write --pid-file: %w", err)
	}
	return func() { _ = os.Remove(path) }, nil
}

// Stopping tells systemd the process is shutting down.
func Stopping() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }

// Failed tells the --daemon parent why this process did not get ready;
// it is a no-op once Ready was called, and outside the background.
func Failed(err error) {
	if f := reportFile(); f != nil {
		fmt.Fprintf(f, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		f.Close()
	}
}

var report sync.Once

// reportFile returns the readiness descriptor the first time only.
func reportFile() *os.File {
	var f *os.File
	report.Do(func() {
		if IsDaemonChild() {
			f = os.NewFile(3, "daemon-ready")
		}
	})
	return f
}
