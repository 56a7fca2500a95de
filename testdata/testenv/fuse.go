package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Mounted reports whether dir is a mount point in /proc/mounts.
func Mounted(dir string) bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && unescapeMount(f[1]) == dir {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes /proc/mounts uses for spaces etc.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

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
