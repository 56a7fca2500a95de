//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"

	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// leaveBound is how long a killed peer may stay in the mount's root.
const leaveBound = 15 * time.Second

// deadPeerProbe watches one peer's directory in a mount after the peer
// was killed: when it left the root, and what reads inside it said in
// the meantime (through a directory handle opened before the kill, so
// they reach the peer also after its name is gone).
type deadPeerProbe struct {
	fd     int
	errnos map[syscall.Errno]int
	n      int
}

// openPeerDir opens dir (a peer's directory in a mount) for later reads.
func openPeerDir(t *testing.T, dir string) *deadPeerProbe {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &deadPeerProbe{fd: fd, errnos: map[syscall.Errno]int{}}
}

// read looks up a name not looked up before (so no cache answers it)
// and records the errno.
func (p *deadPeerProbe) read() syscall.Errno {
	p.n++
	var st unix.Stat_t
	// Like os.Stat, ask again when the Go runtime's own signals
	// (preemption) interrupted the call.
	var err error = unix.EINTR
	for err == unix.EINTR {
		err = unix.Fstatat(p.fd, fmt.Sprintf("d%d/f.txt", p.n), &st, 0)
	}
	var errno syscall.Errno
	if err != nil && !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	p.errnos[errno]++
	return errno
}

// waitGone lists root until name leaves it, reading through p meanwhile
// if reading, and returns how long that took from since.
func (p *deadPeerProbe) waitGone(t *testing.T, root, name string, since time.Time, reading bool) time.Duration {
	t.Helper()
	testenv.WaitEvery(t, 2*leaveBound-time.Since(since), 100*time.Millisecond, fmt.Sprintf("%s to leave %s after it was killed", name, root), func() bool {
		if reading {
			p.read()
		}
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatalf("list %s: %v", root, err)
		}
		return !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == name })
	})
	return time.Since(since)
}

// checkErrnos wants every read of the killed peer to have failed with
// ECONNREFUSED, the real cause.
func (p *deadPeerProbe) checkErrnos(t *testing.T) {
	t.Helper()
	p.checkErrnosIn(t, "killed", syscall.ECONNREFUSED)
}

// checkErrnosIn wants every read of the gone peer to have failed with
// one of want (its real causes), and some read to have failed.
func (p *deadPeerProbe) checkErrnosIn(t *testing.T, how string, want ...syscall.Errno) {
	t.Helper()
	t.Logf("reads of the %s peer: %v", how, p.errnos)
	failed := 0
	for errno, n := range p.errnos {
		if !slices.Contains(want, errno) {
			t.Errorf("%d reads of the %s peer failed with %v (%d), want one of %v", n, how, errno.Error(), int(errno), want)
		} else {
			failed += n
		}
	}
	if failed == 0 {
		t.Errorf("no read of the %s peer said %v", how, want)
	}
}

// deadPeerShare makes a share folder with whoami.txt and the folders the
// probe reads.
func deadPeerShare(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	for i := 0; i <= 200; i++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("d%d", i), "f.txt"), []byte("f\n"), 0o644)
	}
	if err := os.WriteFile(filepath.Join(dir, "whoami.txt"), []byte("I am "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestKilledLANPeerLeaves: a LAN sharer killed with SIGKILL leaves the
// other mount's root within 15 s, also when nobody reads it (the lost
// connection is enough); reads of it (through a handle opened before)
// say ECONNREFUSED; restarted, it is listed again and read.
func TestKilledLANPeerLeaves(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	alice := startLANMount(t, nil, "alice", loopbackArgs(port)...)
	bobDir := deadPeerShare(t, "bob")
	// bob's lasting identity, as on a machine of its own.
	bobArgs := append(loopbackArgs(port), "--host-key", testenv.NewKey(t, t.TempDir(), "bob").Path)
	bob := startLANMountIn(t, nil, "bob", bobDir, filepath.Join(t.TempDir(), "peers"), bobArgs...)
	alice.waitList(t, "bob")
	if got := readFile(t, alice.path("bob", "whoami.txt")); got != "I am bob\n" {
		t.Fatalf("alice reads bob/whoami.txt = %q", got)
	}
	probe := openPeerDir(t, alice.path("bob"))

	killed := time.Now()
	if err := bob.proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := probe.waitGone(t, alice.path(), "bob", killed, false)
	t.Logf("killed LAN peer left the mount %v after SIGKILL", took.Round(time.Millisecond))
	if took > leaveBound {
		t.Errorf("killed LAN peer stayed %v, want at most %v", took, leaveBound)
	}
	for range 3 {
		probe.read()
	}
	probe.checkErrnos(t)

	// Restarted, it comes back.
	bob.proc.Wait(10 * time.Second)
	restarted := time.Now()
	startLANMountIn(t, nil, "bob", bobDir, filepath.Join(t.TempDir(), "peers"), bobArgs...)
	alice.waitList(t, "bob")
	t.Logf("restarted LAN peer listed again %v after its restart", time.Since(restarted).Round(time.Millisecond))
	if got := readFile(t, alice.path("bob", "whoami.txt")); got != "I am bob\n" {
		t.Errorf("alice reads the restarted bob's whoami.txt = %q", got)
	}
}

// advertsOf counts the adverts in the channel that carry name.
func (f *fakeDiscord) advertsOf(name string) int {
	n := 0
	for _, m := range f.Messages(f.channel) {
		if d, err := advert.Decode(m.Content); err == nil && d.Name == name {
			n++
		}
	}
	return n
}

// TestKilledDiscordMemberLeaves: a Discord member killed with SIGKILL
// (its advert stays in the channel, valid for 40 min) leaves the other
// mount within 15 s; reads of it say ECONNREFUSED (not EACCES, not
// EHOSTUNREACH); restarted with its key, it deletes the advert of its
// killed run, so the channel holds one advert of it, and is listed and
// read again.
func TestKilledDiscordMemberLeaves(t *testing.T) {
	testenv.RequireFUSE(t)
	f := newFakeDiscord(t)
	alice := startDiscordMount(t, f, f.bot(), "alice")
	bobToken := f.bot()
	bobKey := testenv.NewKey(t, t.TempDir(), "bob").Path
	bob := startDiscordMount(t, f, bobToken, "bob", "--host-key", bobKey)
	for i := 0; i <= 200; i++ {
		d := filepath.Join(bob.share, fmt.Sprintf("d%d", i))
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "f.txt"), []byte("f\n"), 0o644)
	}
	testenv.WaitFor(t, 15*time.Second, "alice to list bob", func() bool {
		_, err := os.Stat(filepath.Join(alice.mnt, "bob"))
		return err == nil
	})
	if got, err := os.ReadFile(filepath.Join(alice.mnt, "bob", "whoami.bin")); err != nil || !bytes.Equal(got, bob.content) {
		t.Fatalf("alice reading bob: %d bytes, %v", len(got), err)
	}
	probe := openPeerDir(t, filepath.Join(alice.mnt, "bob"))

	killed := time.Now()
	if err := bob.proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := probe.waitGone(t, alice.mnt, "bob", killed, true)
	t.Logf("killed Discord member left the mount %v after SIGKILL", took.Round(time.Millisecond))
	if took > leaveBound {
		t.Errorf("killed Discord member stayed %v, want at most %v", took, leaveBound)
	}
	probe.checkErrnos(t)
	if n := f.advertsOf("bob"); n != 1 {
		t.Errorf("%d adverts of the killed bob in the channel, want its 1", n)
	}

	bob.proc.Wait(10 * time.Second)
	restarted := time.Now()
	bob2 := startDiscordMount(t, f, bobToken, "bob", "--host-key", bobKey)
	testenv.WaitFor(t, 15*time.Second, "alice to list the restarted bob", func() bool {
		_, err := os.Stat(filepath.Join(alice.mnt, "bob", "whoami.bin"))
		return err == nil
	})
	t.Logf("restarted Discord member listed again %v after its restart", time.Since(restarted).Round(time.Millisecond))
	if got, err := os.ReadFile(filepath.Join(alice.mnt, "bob", "whoami.bin")); err != nil || !bytes.Equal(got, bob2.content) {
		t.Errorf("alice reading the restarted bob: %d bytes, %v", len(got), err)
	}
	testenv.WaitFor(t, 15*time.Second, "one advert of bob in the channel", func() bool { return f.advertsOf("bob") == 1 })
}

// TestUnreachablePeerFlagReportsOnce: `dsftp get` from a --peer whose
// port is closed fails with the real cause (connection refused), said
// once: no WARN line beside the final error.
func TestUnreachablePeerFlagReportsOnce(t *testing.T) {
	fp := testenv.NewKey(t, t.TempDir(), "alice").Fingerprint()
	url := fmt.Sprintf("alice=sftp://u@127.0.0.1:%d/?fingerprint=%s", testenv.FreePort(t), fp)
	n := runDsftp(t, testenv.NodeOptions{Env: noToken}, "get", "--discovery", "off", "--peer", url, "alice:x", t.TempDir())
	// --log-json makes get log at info, so the record of the failed dial
	// is there too; the human output says the cause once.
	out := n.Text()
	if n.ExitCode() == 0 {
		t.Fatalf("get from a closed port exited 0:\n%s", out)
	}
	if warns := n.Where(func(r testenv.Record) bool { return r.Level == "WARN" }); len(warns) != 0 {
		t.Errorf("get logged warnings beside the final error: %v", warns)
	}
	lines := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "connection refused") {
			lines++
		}
	}
	if lines != 1 {
		t.Errorf("%d lines say the cause, want one:\n%s", lines, out)
	}
	for _, bad := range []string{"no route to host", "permission denied"} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(bad)) {
			t.Errorf("output says %q:\n%s", bad, out)
		}
	}
}
