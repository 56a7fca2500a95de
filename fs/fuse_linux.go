package fs

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// errNoXattr is the answer for an attribute that is not there.
const errNoXattr = syscall.ENODATA

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

// detach unmounts dir even while a process sits in it.
func detach(dir string) error { return syscall.Unmount(dir, syscall.MNT_DETACH) }
