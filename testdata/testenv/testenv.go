//go:build linux

// Package testenv holds the helpers that dsftp's tests share: finding the
// real tools they drive, building the dsftp binary once, keys, ports and a
// real OpenSSH sshd on loopback.
//
// Prerequisites follow one rule: under CI=true a missing tool or privilege
// fails the test; elsewhere it skips with the reason. A skipped check never
// reports success in CI.
package testenv

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// InCI reports whether the run is CI's, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing fails the test under CI and skips it elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing (CI=true, so this fails instead of skipping): %s", msg)
	}
	t.Skipf("prerequisite missing: %s", msg)
}

// External skips a test under -short: the fast tier runs only in-process
// tests. Every helper that starts a program, mounts, or needs a tool or
// privilege calls it, so a test that uses any of them needs no check of
// its own. CI runs without -short, so nothing is skipped there.
func External(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short runs in-process tests only; this one starts programs, mounts or uses namespaces")
	}
}

// Require checks that each named tool is on PATH (or is an executable path)
// and returns their resolved paths in order.
func Require(t testing.TB, tools ...string) []string {
	t.Helper()
	External(t)
	out := make([]string, 0, len(tools))
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			Missing(t, "%s not found (run `make deps` as root, or apt-get install the package that provides it)", tool)
		}
		out = append(out, p)
	}
	return out
}

// RequireRoot checks that the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	External(t)
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root (network namespaces, sshd or FUSE)")
	}
}

// RequireFUSE checks for /dev/fuse, fusermount3 and the privilege to mount.
func RequireFUSE(t testing.TB) {
	t.Helper()
	External(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		Missing(t, "/dev/fuse: %v", err)
	}
	Require(t, "fusermount3")
	if os.Geteuid() != 0 {
		Missing(t, "FUSE mounts in tests need root")
	}
}

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("not inside the dsftp module")
	}
	return filepath.Dir(gomod)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds cmd/dsftp once per test process (with -race when the test
// binary has it) and returns the path of the executable.
func Binary(t testing.TB) string {
	t.Helper()
	External(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dsftp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built.add(dir)
		buildPath = filepath.Join(dir, "dsftp")
		isolateXDG(dir)
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/dsftp")
		cmd := exec.Command("go", args...)
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build dsftp: %v", buildErr)
	}
	return buildPath
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// WaitTCP waits until addr accepts TCP connections.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "tcp "+addr+" to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// WaitFor polls cond every 20 ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, timeout, 20*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor polling every interval: for a cond that costs the
// system under test something (a lookup through a mount, a request to a
// peer).
func WaitEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, interval, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll calls cond every interval until it holds (true) or timeout passes
// (false): WaitFor for a caller that says more than "timed out" when it
// fails (a screen, a process's output).
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// Key is an ed25519 key pair written as an OpenSSH private key file.
type Key struct {
	Signer ssh.Signer
	Path   string // private key, 0600, as ssh-keygen writes it
}

// Public returns the authorized_keys line of the key.
func (k Key) Public() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Signer.PublicKey())))
}

// Fingerprint returns the SHA256:… fingerprint of the public key.
func (k Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Signer.PublicKey()) }

// NewKey makes an ed25519 key and writes it into dir/name (and name.pub).
func NewKey(t testing.TB, dir, name string) Key {
	t.Helper()
	signer, priv := NewEd25519(t)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	k := Key{Signer: signer, Path: path}
	if err := os.WriteFile(path+".pub", []byte(k.Public()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// Process is a child process owned by a test; it is killed by PID at cleanup.
type Process struct {
	Cmd    *exec.Cmd
	Output *SyncBuffer // combined stdout and stderr
	done   chan struct{}
	err    error
}

// Start runs name with args, capturing its output, and kills it (by PID) at
// the end of the test if it is still running.
func Start(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	return start(t, env, "", nil, nil, name, args...)
}

// start is Start in working directory dir ("" for the test's), copying
// stdout and stderr also to the given writers (nil for none).
func start(t testing.TB, env []string, dir string, stdout, stderr io.Writer, name string, args ...string) *Process {
	t.Helper()
	External(t)
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), withOwnXDG(t, withSTUNDefault(withDiscoveryDefault(env)))...)
	p := &Process{Cmd: cmd, Output: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Writer(p.Output), io.Writer(p.Output)
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(p.Output, stdout)
	}
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(p.Output, stderr)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", name, strings.Join(args, " "), p.Output.String())
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Process) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// WaitOutput waits until the process has printed substr.
func (p *Process) WaitOutput(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("output %q from %s", substr, p.Cmd.Path), func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.Cmd.Path, p.err, substr, p.Output.String())
		default:
		}
		return strings.Contains(p.Output.String(), substr)
	})
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Context returns a context cancelled at the end of the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// RaceEnabled reports whether the tests (and so the dsftp binary that
// Binary builds) run with the race detector, which multiplies memory use.
func RaceEnabled() bool { return raceEnabled }
