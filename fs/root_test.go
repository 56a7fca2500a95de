package fs_test

import (
	"errors"
	"os"
	"path/filepath"
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
	defer pl.Close()
	mnt := mountDir(t)
	testenv.CleanupUnmount(t, mnt)
	// A long TTL: only notifications can make changes visible in time.
	m, err := fs.New(mnt, fs.Options{Registry: reg, Pool: pl, AttrTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()

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
