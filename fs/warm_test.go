//go:build linux

package fs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestJoinConnectsAhead: a peer that joins the registry is connected to
// (sshd has forked its session) before anything under the mount asks for
// it, and its listing then works.
func TestJoinConnectsAhead(t *testing.T) {
	rm := registryMount(t, fs.Options{})
	sshd, p, reg, mnt := rm.sshd, rm.peer, rm.reg, rm.mnt
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
