//go:build linux

package fs_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestUnmountBusyWithSpace: a mountpoint whose path holds a space (which
// /proc/self/mountinfo escapes as \040) kept busy by an open directory is
// still recognised as ours, detached, and gone after Unmount.
func TestUnmountBusyWithSpace(t *testing.T) {
	testenv.RequireFUSE(t)
	mnt := filepath.Join(t.TempDir(), "my peers")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.CleanupUnmount(t, mnt)
	pl, err := pool.New(pool.Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	m, err := fs.New(mnt, fs.Options{Registry: peers.NewRegistry(""), Pool: fs.PoolRemote(pl)})
	if err != nil {
		t.Fatal(err)
	}
	if got := fs.MountType(mnt); got != "fuse.dsftp" {
		t.Fatalf("MountType(%q) = %q, want fuse.dsftp", mnt, got)
	}
	busy, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if err := m.Unmount(); err != nil {
		t.Fatalf("Unmount of a busy mount: %v", err)
	}
	if testenv.Mounted(mnt) {
		t.Fatalf("%s still mounted after Unmount", mnt)
	}
}

// TestPrepareMountpoint: a missing mountpoint is a usage error unless
// created; a file is refused; the path comes back absolute.
func TestPrepareMountpoint(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	missing := filepath.Join(dir, "a b")
	if _, err := fs.PrepareMountpoint(missing, false, log); !errors.Is(err, fs.ErrBadMountpoint) {
		t.Errorf("missing mountpoint: %v, want ErrBadMountpoint", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.PrepareMountpoint(file, true, log); !errors.Is(err, fs.ErrBadMountpoint) {
		t.Errorf("a file as mountpoint: %v, want ErrBadMountpoint", err)
	}
	t.Chdir(dir)
	// (err is FUSE's to report; the path is made absolute regardless.)
	if abs, err := fs.PrepareMountpoint("a b", true, log); abs != missing {
		t.Errorf("PrepareMountpoint(\"a b\", create) = %q, %v; want %q", abs, err, missing)
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Errorf("--create made no directory: %v", err)
	}
}
