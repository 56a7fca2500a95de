//go:build linux

package fs_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// within runs fn and fails the test if it has not returned after d: the
// "never hang" bound, far above the deadline under test.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// waitFUSERequest waits until process pid sleeps in the kernel awaiting
// a FUSE server's answer.
func waitFUSERequest(t *testing.T, pid int) {
	t.Helper()
	wchan := fmt.Sprintf("/proc/%d/wchan", pid)
	testenv.WaitFor(t, 10*time.Second, "a FUSE request of pid "+strconv.Itoa(pid), func() bool {
		b, err := os.ReadFile(wchan)
		return err == nil && string(b) == "request_wait_answer"
	})
}

func isTimeoutOrEIO(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH)
}

// TestFrozenPeer: a SIGSTOPped peer fails within its deadline while the
// root and the other peer keep answering, and works again once resumed.
func TestFrozenPeer(t *testing.T) {
	srcA, srcB := t.TempDir(), t.TempDir()
	tree(t, srcA, 2<<20)
	sumsB := tree(t, srcB, 2<<20)
	a := testenv.StartSSHD(t, srcA)
	b := testenv.StartSSHD(t, srcB)
	mnt := mountDir(t)
	startMount(t, mnt, "--timeout", "5s", "--identity", a.Client.Path, "--identity", b.Client.Path,
		"--peer", "a="+a.URL(), "--peer", "b="+b.URL())
	// Connect to both first, so the freeze hits live connections.
	for _, p := range []string{"a", "b"} {
		if _, err := os.ReadFile(filepath.Join(mnt, p, "hello.txt")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Signal(syscall.SIGCONT) })

	frozen := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := os.ReadFile(filepath.Join(mnt, "a", "big.bin"))
		frozen <- err
	}()
	// While a's read is stuck, the root and b answer (well before a's
	// 5 s deadline could have released anything).
	err := within(t, 3*time.Second, "ls of the root", func() error {
		es, err := os.ReadDir(mnt)
		if err == nil && len(es) != 2 {
			t.Errorf("root lists %d entries, want 2", len(es))
		}
		return err
	})
	if err != nil {
		t.Fatalf("ls root: %v", err)
	}
	err = within(t, 3*time.Second, "lstat of the frozen peer's directory", func() error {
		_, err := os.Lstat(filepath.Join(mnt, "a"))
		return err
	})
	if err != nil {
		t.Fatalf("lstat a: %v", err)
	}
	err = within(t, 3*time.Second, "reading the other peer", func() error {
		got := sha(t, filepath.Join(mnt, "b", "hello.txt"))
		if got != sumsB["hello.txt"] {
			t.Errorf("b/hello.txt checksum differs")
		}
		_, err := os.ReadDir(filepath.Join(mnt, "b", "many"))
		return err
	})
	if err != nil {
		t.Fatalf("peer b while a is frozen: %v", err)
	}
	select {
	case err := <-frozen:
		if !isTimeoutOrEIO(err) {
			t.Fatalf("read on the frozen peer: %v, want ETIMEDOUT or EIO", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("read on the frozen peer did not fail within 20 s (deadline 5 s)")
	}
	t.Logf("frozen read failed after %v", time.Since(start).Round(time.Millisecond))
	// A listing of the frozen peer fails too, within the deadline.
	err = within(t, 20*time.Second, "listing the frozen peer", func() error {
		_, err := os.ReadDir(filepath.Join(mnt, "a", "many"))
		return err
	})
	if !isTimeoutOrEIO(err) {
		t.Errorf("ls of the frozen peer: %v, want ETIMEDOUT or EIO", err)
	}

	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the resumed peer to answer again", func() bool {
		_, err := os.ReadFile(filepath.Join(mnt, "a", "big.bin"))
		return err == nil
	})
}

// TestInterruptedRead: Ctrl-C on a reader stuck on a frozen peer ends it
// long before the (long) deadline.
func TestInterruptedRead(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<20)
	a := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	startMount(t, mnt, "--timeout", "60s", "--identity", a.Client.Path, "--peer", "a="+a.URL())
	if _, err := os.ReadFile(filepath.Join(mnt, "a", "hello.txt")); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Signal(syscall.SIGCONT) })
	cat := exec.Command("cat", filepath.Join(mnt, "a", "big.bin"))
	cat.Stdout = io.Discard
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cat.Wait() }()
	waitFUSERequest(t, cat.Process.Pid)
	select {
	case err := <-done:
		t.Fatalf("cat finished on a frozen peer: %v", err)
	default:
	}
	_ = cat.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cat.Process.Kill()
		t.Fatalf("cat did not stop within 15 s of SIGINT (deadline 60 s)")
	}
}

// TestKilledPeerMidRead: SIGKILL of the server mid-read gives the reader
// an error (never a silently short file), the mount survives, and the
// restarted peer works again.
func TestKilledPeerMidRead(t *testing.T) {
	src := t.TempDir()
	sums := tree(t, src, 24<<20)
	a := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	m := startMount(t, mnt, "--timeout", "2s", "--identity", a.Client.Path, "--peer", "a="+a.URL())
	f, err := os.Open(filepath.Join(mnt, "a", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(f, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = within(t, 15*time.Second, "reading on after the peer died", func() error {
		n, err := io.Copy(io.Discard, f)
		if err == nil {
			t.Errorf("read on to the end (%d more bytes of %d) although the peer died: a short file", n, 24<<20)
		}
		return err
	})
	if !isTimeoutOrEIO(err) {
		t.Fatalf("reading after SIGKILL: %v, want EIO or ETIMEDOUT", err)
	}
	f.Close()
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatalf("mount root after the peer died: %v", err)
	}
	a.Restart(t)
	testenv.WaitFor(t, 30*time.Second, "the restarted peer to answer", func() bool {
		_, err := os.ReadDir(filepath.Join(mnt, "a", "many"))
		return err == nil
	})
	if got := sha(t, filepath.Join(mnt, "a", "big.bin")); got != sums["big.bin"] {
		t.Errorf("big.bin after restart: checksum differs")
	}
	// Stop the mount before the restarted sshd's cleanup, which waits for
	// its sessions (our connections) to end.
	m.stop(t)
}

// TestStaleMountCleanedUp: a killed run leaves "transport endpoint is not
// connected"; the next run cleans it up and mounts.
func TestStaleMountCleanedUp(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<10)
	a := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	args := []string{"--identity", a.Client.Path, "--peer", "a=" + a.URL()}
	m := startMount(t, mnt, args...)
	if _, err := os.ReadFile(filepath.Join(mnt, "a", "hello.txt")); err != nil {
		t.Fatal(err)
	}
	_ = m.proc.Cmd.Process.Kill()
	<-m.proc.Done()
	if _, err := os.ReadDir(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL, ls of the mountpoint: %v; want ENOTCONN (a stale mount)", err)
	}
	startMount(t, mnt, args...)
	b, err := os.ReadFile(filepath.Join(mnt, "a", "hello.txt"))
	if err != nil || string(b) != "hello from the peer\n" {
		t.Fatalf("after restart: %q, %v", b, err)
	}
}
