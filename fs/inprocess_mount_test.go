//go:build linux

package fs

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestInProcessMount mounts the file system in this process, with the
// kernel's FUSE, over the fake remote (as go-fuse's own tests mount
// theirs), and drives it with ordinary system calls: the root lists live
// peers while one is frozen and one dead, neither holding up the others;
// the remote's errors reach the caller as errnos; files read whole and in
// order (sibling prefetch); writes are refused; unmounting at the end of
// Run closes the remote.
func TestInProcessMount(t *testing.T) {
	testenv.RequireFUSE(t)
	fake := newFakeRemote(t)
	fake.setTimeout(2 * time.Second)
	alice := peerID("alice")
	fake.file(alice, "a.txt", []byte("alice's file\n"))
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	fake.file(alice, "big.bin", big)
	fake.put(alice, "link", &fakeNode{mode: os.ModeSymlink | 0o777, target: "a.txt"})
	names, want := fakeSiblings(fake, alice, "d", 20, 8<<10, 1)
	faults := map[string]struct {
		err  error
		want syscall.Errno
	}{
		"eacces":    {iofs.ErrPermission, syscall.EACCES},
		"eio":       {errors.New("connection lost"), syscall.EIO},
		"etimedout": {pool.ErrTimeout, syscall.ETIMEDOUT},
	}
	for name, f := range faults {
		fake.file(alice, "faults/"+name, []byte("x"))
		fake.fault(alice, opLstat, "faults/"+name, f.err)
	}
	fake.fault(alice, opReadDir, "faults", errors.New("no listing here")) // only LSTAT answers
	fake.file(peerID("carol"), "c.txt", []byte("carol's"))
	fake.freeze(peerID("carol"))
	fake.file(peerID("dave"), "d.txt", []byte("dave's"))
	fake.setDead(peerID("dave"), true)
	reg := peers.NewRegistry("")
	addPeers(reg, "alice", "carol", "dave")

	mnt := t.TempDir()
	testenv.CleanupUnmount(t, mnt)
	ready := make(chan struct{})
	m, err := New(mnt, Options{Registry: reg, Pool: fake, AttrTTL: time.Minute,
		PrefetchMemory: DefaultPrefetchMemory, Logger: testLogger(t), Ready: func() { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
	})
	<-ready
	if got := MountType(mnt); got != "fuse.dsftp" {
		t.Fatalf("mount type %q", got)
	}

	t.Run("root", func(t *testing.T) {
		if got := dirNames(t, mnt); !slices.Equal(got, []string{"alice", "carol", "dave"}) {
			t.Fatalf("root lists %v", got)
		}
	})
	t.Run("frozen peer holds no one else", func(t *testing.T) {
		held := make(chan error, 1)
		go func() {
			_, err := os.ReadDir(filepath.Join(mnt, "carol"))
			held <- err
		}()
		eventually(t, 15*time.Second, "carol's listing reaches the frozen peer", func() bool { return fake.waiting.Load() > 0 })
		if got := dirNames(t, mnt); !slices.Equal(got, []string{"alice", "carol", "dave"}) {
			t.Fatalf("root lists %v while carol is frozen", got)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "alice", "a.txt")); err != nil || string(b) != "alice's file\n" {
			t.Fatalf("alice's file while carol is frozen: %q %v", b, err)
		}
		select {
		case err := <-held:
			if !errors.Is(err, syscall.ETIMEDOUT) {
				t.Fatalf("listing of a frozen peer: %v, want ETIMEDOUT", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("listing of a frozen peer did not end within 15 s (the remote's deadline is 2 s)")
		}
	})
	t.Run("dead peer", func(t *testing.T) {
		if _, err := os.ReadDir(filepath.Join(mnt, "dave")); !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Fatalf("listing of a dead peer: %v, want EHOSTUNREACH", err)
		}
		if _, err := os.ReadFile(filepath.Join(mnt, "alice", "a.txt")); err != nil {
			t.Fatalf("alice beside a dead peer: %v", err)
		}
	})
	t.Run("errnos", func(t *testing.T) {
		for name, f := range faults {
			if _, err := os.Stat(filepath.Join(mnt, "alice", "faults", name)); !errors.Is(err, f.want) {
				t.Errorf("stat failing with %v: %v, want %v", f.err, err, f.want)
			}
		}
		if _, err := os.Stat(filepath.Join(mnt, "alice", "nothing")); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat of a missing file: %v, want ENOENT", err)
		}
		if err := os.WriteFile(filepath.Join(mnt, "alice", "new"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("create: %v, want EROFS", err)
		}
		if err := os.Mkdir(filepath.Join(mnt, "alice", "newdir"), 0o755); !errors.Is(err, syscall.EROFS) {
			t.Errorf("mkdir: %v, want EROFS", err)
		}
		if err := os.Mkdir(filepath.Join(mnt, "newpeer"), 0o755); !errors.Is(err, syscall.EROFS) {
			t.Errorf("mkdir in the root: %v, want EROFS", err)
		}
	})
	t.Run("reads", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(mnt, "alice", "big.bin"))
		if err != nil || !bytes.Equal(b, big) {
			t.Fatalf("big.bin: %d bytes (want %d), equal %v, %v", len(b), len(big), bytes.Equal(b, big), err)
		}
		f, err := os.Open(filepath.Join(mnt, "alice", "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1000)
		if n, err := f.ReadAt(buf, 3<<20+17); err != nil || !bytes.Equal(buf[:n], big[3<<20+17:3<<20+1017]) {
			t.Fatalf("pread: %d %v", n, err)
		}
		if target, err := os.Readlink(filepath.Join(mnt, "alice", "link")); err != nil || target != "a.txt" {
			t.Fatalf("readlink: %q %v", target, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(mnt, "alice"), &st); err != nil || st.Blocks != 1000 || st.Bavail != 400 {
			t.Fatalf("statfs: %+v %v", st, err)
		}
	})
	t.Run("sibling prefetch", func(t *testing.T) {
		dir := filepath.Join(mnt, "alice", "d")
		if got := dirNames(t, dir); !slices.Equal(got, names) {
			t.Fatalf("listing %v", got)
		}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil || !bytes.Equal(b, want[n]) {
				t.Fatalf("%s: %d bytes, %v", n, len(b), err)
			}
		}
		pf := m.root.fsys.pf
		pf.mu.Lock()
		st := pf.stats
		pf.mu.Unlock()
		if st.hits < len(names)/2 {
			t.Fatalf("%d files read in order through the kernel: prefetch %+v, want at least %d hits", len(names), st, len(names)/2)
		}
		if n := fake.total(opOpen, alice); n > 8 {
			t.Fatalf("%d files read in order opened %d files on the peer", len(names), n)
		}
	})

	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	runDone <- nil // for the cleanup
	if testenv.Mounted(mnt) {
		t.Fatalf("%s still mounted after Run ended", mnt)
	}
	fake.mu.Lock()
	closed := fake.closed
	fake.mu.Unlock()
	if !closed {
		t.Fatal("Run ended without closing the remote")
	}
}

// dirNames lists dir as ls does, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// runInProcess mounts a filesystem with o (and the test's logger) at mnt
// in this process, serves it until the test ends and returns once it is
// mounted.
func runInProcess(t *testing.T, mnt string, o Options) *Mount {
	t.Helper()
	testenv.CleanupUnmount(t, mnt)
	ready := make(chan struct{})
	o.Logger, o.Ready = testLogger(t), func() { close(ready) }
	m, err := New(mnt, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
	})
	<-ready
	return m
}
