package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/dsftp/dsftp/fs/mountinfo"
)

// fsType is the type /proc/self/mountinfo shows for a dsftp mount.
const fsType = "fuse.dsftp"

// ErrBadMountpoint is wrapped by PrepareMountpoint when the mountpoint
// itself is wrong (missing, not a directory): the user's to fix, which
// the command reports as a usage error.
var ErrBadMountpoint = errors.New("bad mountpoint")

// mountpointError is an ErrBadMountpoint with its own message.
type mountpointError struct{ msg string }

func (e mountpointError) Error() string        { return e.msg }
func (e mountpointError) Is(target error) bool { return target == ErrBadMountpoint }

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

// checkFUSE names the missing piece before go-fuse fails obscurely.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: load the fuse kernel module (modprobe fuse) and install FUSE 3 (apt-get install fuse3)")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return fmt.Errorf("fusermount3 not found: install FUSE 3 (apt-get install fuse3)")
		}
	}
	return nil
}

// MountType returns the type of the file system visible at dir (the last
// one mounted exactly there), or "" when dir is no mount point.
func MountType(dir string) string {
	types := mountinfo.Types(dir)
	if len(types) == 0 {
		return ""
	}
	return types[len(types)-1]
}

// Mounts lists the mountpoints of every dsftp file system on this machine
// (in this mount namespace).
func Mounts() []string { return mountinfo.Of(fsType) }

// isMounted reports whether a dsftp file system is mounted at dir (also
// under another mount on top of it).
func isMounted(dir string) bool { return isMountedAs(dir, fsType) }

// isMountedAs is isMounted for a mount of type fstype (fuse.<subtype>).
func isMountedAs(dir, fstype string) bool {
	return slices.Contains(mountinfo.Types(dir), fstype)
}

// lazyUnmount detaches the mount at dir even while it is busy.
func lazyUnmount(dir string) error {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
			return nil
		}
	}
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u -z: %v: %s", err, out)
	}
	return nil
}
