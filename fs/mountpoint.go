//go:build !windows

package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/dsftp/dsftp/fs/mountinfo"
)

// PrepareMountpoint readies dir for New and returns it made absolute: it
// cleans up a stale mount left by a killed run, creates dir when create is
// set, refuses a dir that is not a directory or is already mounted by
// another dsftp, and checks that FUSE is there.
func PrepareMountpoint(dir string, create bool, log *slog.Logger) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if err := prepareMountpoint(abs, create, log); err != nil {
		return "", err
	}
	return abs, checkFUSE()
}

// prepareMountpoint is PrepareMountpoint for the absolute dir, without
// the FUSE check.
func prepareMountpoint(dir string, create bool, log *slog.Logger) error {
	// statfs always reaches a FUSE daemon (stat may be answered from the
	// kernel's attribute cache), so it is what reveals a dead one.
	var sfs syscall.Statfs_t
	err := syscall.Statfs(dir, &sfs)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		log.Warn("cleaning up a stale mount left by an earlier run", "mountpoint", dir)
		if err := lazyUnmount(dir); err != nil {
			return fmt.Errorf("mountpoint %s is a stale mount (transport endpoint is not connected) and unmounting it failed: %w; try: fusermount3 -u -z %s", dir, err, dir)
		}
		_, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !create {
			return mountpointError{fmt.Sprintf("mountpoint %s does not exist; create it (mkdir -p %s) or pass --create", dir, dir)}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create mountpoint: %w", err)
		}
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return mountpointError{fmt.Sprintf("mountpoint %s is not a directory", dir)}
	}
	if MountType(dir) == fsType {
		return fmt.Errorf("%s is already mounted by another dsftp; stop it first (or: fusermount3 -u %s)", dir, dir)
	}
	return nil
}

// isMountedAs reports whether a file system of type fstype
// (fuse.<subtype>) is mounted at dir (also under another mount on top of
// it).
func isMountedAs(dir, fstype string) bool {
	return slices.Contains(mountinfo.Types(dir), fstype)
}
