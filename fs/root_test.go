//go:build linux

package fs_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// TestRootFollowsRegistry mounts in-process and changes the registry: a
// peer that joins appears (despite a cached negative lookup), one that
// leaves disappears (despite cached entries), without any unmount.
func TestRootFollowsRegistry(t *testing.T) {
	// A long TTL: only notifications can make changes visible in time.
	rm := registryMount(t, fs.Options{AttrTTL: time.Minute})
	p, reg, mnt := rm.peer, rm.reg, rm.mnt

	if es, err := os.ReadDir(mnt); err != nil || len(es) != 0 {
		t.Fatalf("empty registry: root lists %v, %v", es, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "alpha")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("alpha before it joined: %v", err)
	}
	reg.Upsert(p)
	testenv.WaitFor(t, 5*time.Second, "alpha to appear", func() bool {
		_, err := os.Stat(filepath.Join(mnt, "alpha", "hello.txt"))
		return err == nil
	})
	if es, _ := os.ReadDir(mnt); len(es) != 1 || es[0].Name() != "alpha" {
		t.Errorf("root lists %v, want [alpha]", es)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "alpha", "hello.txt"))
	if err != nil || string(b) != "hello from the peer\n" {
		t.Fatalf("read through the new peer: %q, %v", b, err)
	}
	reg.Remove(p.ID)
	testenv.WaitFor(t, 5*time.Second, "alpha to disappear", func() bool {
		_, err := os.Stat(filepath.Join(mnt, "alpha"))
		return errors.Is(err, os.ErrNotExist)
	})
	if es, _ := os.ReadDir(mnt); len(es) != 0 {
		t.Errorf("root lists %v after alpha left", es)
	}
	// Rejoining works again.
	reg.Upsert(p)
	testenv.WaitFor(t, 5*time.Second, "alpha to reappear", func() bool {
		_, err := os.ReadFile(filepath.Join(mnt, "alpha", "hello.txt"))
		return err == nil
	})
}

// TestRootManyPeers: with 10,000 peers (a LAN flood's worth) the root
// lists them all, follows joins and departures, and `ls` and `ls -l`
// answer; the times are logged (the root's updates cost O(changes), not a
// copy and sort of all peers per change).
func TestRootManyPeers(t *testing.T) {
	testenv.RequireFUSE(t)
	const n = 10000
	reg := peers.NewRegistry("")
	pl, err := pool.New(pool.Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	mnt := mountDir(t)
	testenv.CleanupUnmount(t, mnt)
	m, err := fs.New(mnt, fs.Options{Registry: reg, Pool: fs.PoolRemote(pl), AttrTTL: time.Minute,
		Logger: slog.New(slog.DiscardHandler)}) // 20,000 join and leave lines
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()

	id := func(i int) string { return fmt.Sprintf("SHA256:peer%05d", i) }
	start := time.Now()
	for i := range n {
		// Every advert is a change the root follows while it happens.
		reg.Upsert(peers.Peer{ID: id(i), Name: fmt.Sprintf("p%05d", i), Addrs: []string{"127.0.0.1:9"},
			Expires: time.Now().Add(time.Hour)})
	}
	upserts := time.Since(start)
	testenv.WaitFor(t, 30*time.Second, "all peers to be listed", func() bool {
		es, err := os.ReadDir(mnt)
		return err == nil && len(es) == n
	})
	t.Logf("%d adverts upserted in %v; listed after %v", n, upserts.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for range 3 {
		t0 := time.Now()
		es, err := os.ReadDir(mnt)
		if err != nil || len(es) != n {
			t.Fatalf("ls: %d entries, %v", len(es), err)
		}
		if es[0].Name() != "p00000" || es[n-1].Name() != fmt.Sprintf("p%05d", n-1) {
			t.Fatalf("not sorted: first %s, last %s", es[0].Name(), es[n-1].Name())
		}
		t.Logf("ls of %d peers: %v", n, time.Since(t0).Round(time.Microsecond))
	}
	t0 := time.Now()
	out, err := exec.Command("ls", "-l", mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(out), "\n") - 1; got != n {
		t.Errorf("ls -l shows %d peers, want %d", got, n)
	}
	t.Logf("ls -l of %d peers: %v", n, time.Since(t0).Round(time.Millisecond))

	// ls while another 5,000 join and as many refresh.
	flood := make(chan struct{})
	go func() {
		defer close(flood)
		for i := range n / 2 {
			reg.Upsert(peers.Peer{ID: id(n + i), Name: fmt.Sprintf("q%05d", i), Addrs: []string{"127.0.0.1:9"},
				Expires: time.Now().Add(time.Hour)})
			reg.Upsert(peers.Peer{ID: id(i), Name: fmt.Sprintf("p%05d", i), Addrs: []string{"127.0.0.1:9"},
				Expires: time.Now().Add(time.Hour)})
		}
	}()
	for done := false; !done; {
		select {
		case <-flood:
			done = true
		default:
		}
		t0 := time.Now()
		es, err := os.ReadDir(mnt)
		if err != nil || len(es) < n {
			t.Fatalf("ls during the flood: %d entries, %v", len(es), err)
		}
		t.Logf("ls during the flood (%d peers): %v", len(es), time.Since(t0).Round(time.Microsecond))
	}
	testenv.WaitFor(t, 30*time.Second, "all peers to be listed", func() bool {
		es, err := os.ReadDir(mnt)
		return err == nil && len(es) == n+n/2
	})
	for i := range n / 2 {
		reg.Remove(id(n + i))
	}

	// Half of the first ones leave.
	for i := 0; i < n; i += 2 {
		reg.Remove(id(i))
	}
	testenv.WaitFor(t, 30*time.Second, "half of the peers to leave", func() bool {
		es, err := os.ReadDir(mnt)
		return err == nil && len(es) == n/2
	})
	if _, err := os.Stat(filepath.Join(mnt, "p00000")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a departed peer still answers: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "p00001")); err != nil {
		t.Errorf("a live peer: %v", err)
	}
}

// regMount is a mount in this process that lists what its registry holds,
// and one peer (not yet in the registry) served by OpenSSH.
type regMount struct {
	sshd *testenv.SSHD
	peer peers.Peer
	reg  *peers.Registry
	mnt  string
}

// registryMount serves a small tree over OpenSSH as peer "alpha" and
// mounts, with opts, a file system over an empty registry; both end with
// the test.
func registryMount(t *testing.T, opts fs.Options) *regMount {
	t.Helper()
	testenv.RequireFUSE(t)
	src := t.TempDir()
	tree(t, src, 1<<10)
	sshd := testenv.StartSSHD(t, src)
	p, err := peers.ParsePeerFlag("alpha=" + sshd.URL())
	if err != nil {
		t.Fatal(err)
	}
	reg := peers.NewRegistry("")
	pl, err := pool.New(pool.Options{Timeout: 3 * time.Second, Identities: []ssh.Signer{sshd.Client.Signer}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	mnt := mountDir(t)
	testenv.CleanupUnmount(t, mnt)
	opts.Registry, opts.Pool = reg, fs.PoolRemote(pl)
	m, err := fs.New(mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmount() })
	return &regMount{sshd: sshd, peer: p, reg: reg, mnt: mnt}
}
