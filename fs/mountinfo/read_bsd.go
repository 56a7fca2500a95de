//go:build darwin || freebsd

package mountinfo

import (
	"strings"

	"golang.org/x/sys/unix"
)

// read lists the mounts from getfsstat(2). A FUSE file system shows as
// "fuse.NAME", as on Linux, where NAME is the source it was mounted
// from (dsftp mounts as "dsftp"), so callers match the same types.
func read() []entry {
	n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
	if err != nil || n <= 0 {
		return nil
	}
	buf := make([]unix.Statfs_t, n)
	if n, err = unix.Getfsstat(buf, unix.MNT_NOWAIT); err != nil {
		return nil
	}
	es := make([]entry, 0, n)
	for _, st := range buf[:n] {
		typ, from := cstring(st.Fstypename[:]), cstring(st.Mntfromname[:])
		if strings.Contains(typ, "fuse") {
			typ = "fuse." + from
		}
		es = append(es, entry{point: cstring(st.Mntonname[:]), fstype: typ})
	}
	return es
}

// cstring is the text of a NUL-terminated array.
func cstring[T byte | int8](a []T) string {
	b := make([]byte, 0, len(a))
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
