//go:build darwin || freebsd

package fs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoXattr is the answer for an attribute that is not there.
const errNoXattr = syscall.ENOATTR

// checkFUSE names the missing piece before go-fuse fails obscurely: on
// macOS macFUSE (its mount helper), on FreeBSD the fusefs module's device.
func checkFUSE() error {
	if runtime.GOOS == "darwin" {
		for _, p := range []string{"/Library/Filesystems/macfuse.fs", "/Library/Filesystems/osxfuse.fs"} {
			if _, err := os.Stat(p); err == nil {
				return nil
			}
		}
		return fmt.Errorf("macFUSE is not installed: install it from macfuse.github.io (or: brew install --cask macfuse) and allow its system extension; or use dsftp shell / dsftp get, which need no FUSE")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: load the fusefs module (kldload fusefs)")
	}
	return nil
}

// lazyUnmount unmounts the stale mount at dir, by force (the BSDs have no
// lazy detach).
func lazyUnmount(dir string) error {
	if err := detach(dir); err == nil {
		return nil
	}
	out, err := exec.Command("umount", "-f", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("umount -f: %v: %s", err, out)
	}
	return nil
}

// detach unmounts dir even while a process sits in it.
func detach(dir string) error { return unix.Unmount(dir, unix.MNT_FORCE) }
