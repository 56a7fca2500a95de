// Package mountinfo tells which file systems are mounted where: from
// /proc/self/mountinfo on Linux, getfsstat(2) on macOS and FreeBSD. It imports nothing of dsftp, so the test helpers
// (testdata/testenv) use the same parser as fs without an import cycle
// through fs's own dependencies.
package mountinfo

import (
	"slices"
	"strings"
)

// entry is one mount: where, and of which type.
type entry struct {
	point  string // unescaped
	fstype string // e.g. "fuse.dsftp"
}

// parse reads the text of a mountinfo file.
func parse(text string) []entry {
	var out []entry
	for _, line := range strings.Split(text, "\n") {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		if i := slices.Index(f[6:], "-"); i >= 0 && 6+i+1 < len(f) {
			out = append(out, entry{point: Unescape(f[4]), fstype: f[6+i+1]})
		}
	}
	return out
}

// Types lists the types of the file systems mounted exactly at dir
// (absolute, clean), in mount order: the last one is the visible one.
func Types(dir string) []string { return typesAt(read(), dir) }

func typesAt(es []entry, dir string) []string {
	var types []string
	for _, e := range es {
		if e.point == dir {
			types = append(types, e.fstype)
		}
	}
	return types
}

// Of lists the mountpoints of every file system of type fstype, in mount
// order.
func Of(fstype string) []string { return pointsOf(read(), fstype) }

func pointsOf(es []entry, fstype string) []string {
	var out []string
	for _, e := range es {
		if e.fstype == fstype {
			out = append(out, e.point)
		}
	}
	return out
}

// Unescape undoes the octal escapes (\040 for a space, \011, \012, \134)
// the kernel writes in mount paths; a backslash that does not start three
// octal digits stays as it is.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	isOctal := func(c byte) bool { return c >= '0' && c <= '7' }
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
