//go:build linux

package fs_test

import (
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

// TestJoinConnectsAhead: a peer that joins the registry is connected to
// (sshd has forked its session) before anything under the mount asks for
// it, and its listing then works.
func TestJoinConnectsAhead(t *testing.T) {
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
	m, err := fs.New(mnt, fs.Options{Registry: reg, Pool: fs.PoolRemote(pl)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	// sshd's own start-up probe leaves a short-lived child.
	testenv.WaitFor(t, 15*time.Second, "no sshd session before the peer joins", func() bool {
		return len(testenv.Descendants(sshd.Proc.Cmd.Process.Pid)) == 0
	})
	reg.Upsert(p)
	// Nothing touches the mount here: only the join can make the pool
	// dial.
	testenv.WaitFor(t, 15*time.Second, "a connection to the peer that joined", func() bool {
		return len(testenv.Descendants(sshd.Proc.Cmd.Process.Pid)) > 0
	})
	if _, err := os.ReadDir(filepath.Join(mnt, "alpha")); err != nil {
		t.Fatalf("listing the warmed peer: %v", err)
	}
}
