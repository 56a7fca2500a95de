package fs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fuseConf is where fusermount3 reads user_allow_other.
var fuseConf = "/etc/fuse.conf"

// checkUser says, for a user other than root, what fusermount3 would
// refuse, with the fix.
func (o Options) checkUser(dir string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	if err := unix.Access("/dev/fuse", unix.R_OK|unix.W_OK); err != nil {
		return fmt.Errorf("no permission to open /dev/fuse (%s); FUSE needs it open to every user, as the fuse3 package sets it: sudo chmod 0666 /dev/fuse", describe("/dev/fuse"))
	}
	if (o.AllowOther || o.AllowRoot) && !userAllowOther() {
		opt := "allow_other"
		if !o.AllowOther {
			opt = "allow_root"
		}
		return fmt.Errorf("%s needs user_allow_other in %s, which is not set: echo user_allow_other | sudo tee -a %s", opt, fuseConf, fuseConf)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("you cannot write to mountpoint %s (%s), and fusermount3 mounts only where its user may write: mount on a directory of yours (mkdir -p ~/peers)", dir, describe(dir))
	}
	if bin, err := exec.LookPath("fusermount3"); err == nil {
		if fi, err := os.Stat(bin); err == nil && fi.Mode()&os.ModeSetuid == 0 {
			return fmt.Errorf("%s is not setuid root, so only root can mount: sudo chmod u+s %s (as the fuse3 package installs it)", bin, bin)
		}
	}
	return nil
}

// describe says a device's mode and owner, as ls -l would.
func describe(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("mode %04o, uid %d, gid %d", st.Mode&0o7777, st.Uid, st.Gid)
}

// userAllowOther reports whether /etc/fuse.conf has an uncommented
// user_allow_other line.
func userAllowOther() bool {
	f, err := os.Open(fuseConf)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "user_allow_other" {
			return true
		}
	}
	return false
}

// directMountFlags make a mount by root read-only at the mount too, not
// only in the superblock, as fusermount3 makes it: mount(8) and findmnt
// show "ro".
const directMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV

// explainMountError turns go-fuse's mount errors ("fusermount exited with
// code 256") into what went wrong and how to fix it.
func explainMountError(dir string, err error, o Options) error {
	switch {
	case errors.Is(err, os.ErrNotExist) && fileMissing("/dev/fuse"):
		return fmt.Errorf("mount %s: /dev/fuse is missing; load the fuse module (modprobe fuse) or install fuse3 (apt-get install fuse3): %w", dir, err)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("mount %s: not permitted; install fuse3 (which provides the setuid fusermount3) or run as root: %w", dir, err)
	case strings.Contains(err.Error(), "fusermount"):
		// fusermount3 printed its reason above; Check catches the usual
		// ones before mounting, so this is a rarer one.
		if cerr := o.Check(dir); cerr != nil {
			return fmt.Errorf("mount %s: %w", dir, cerr)
		}
		return fmt.Errorf("mount %s: fusermount3 refused (its message is above): %s", dir, strings.TrimSpace(err.Error()))
	}
	return fmt.Errorf("mount %s: %w", dir, err)
}

func fileMissing(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, os.ErrNotExist)
}
