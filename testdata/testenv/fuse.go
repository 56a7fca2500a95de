//go:build linux

package testenv

import (
	"os/exec"
	"testing"

	"github.com/dsftp/dsftp/fs/mountinfo"
)

// Mounted reports whether anything is mounted at dir.
func Mounted(dir string) bool { return len(mountinfo.Types(dir)) > 0 }

// CleanupUnmount lazily unmounts dir at the end of the test if it is still
// mounted, so a failing test leaves no mount behind.
func CleanupUnmount(t testing.TB, dir string) {
	t.Cleanup(func() {
		if Mounted(dir) {
			out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
			if err != nil {
				t.Logf("fusermount3 -u -z %s: %v %s", dir, err, out)
			}
		}
	})
}
