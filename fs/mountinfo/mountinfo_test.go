package mountinfo

import (
	"slices"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/plain`:         `/mnt/plain`,
		`/mnt/with\040space`: `/mnt/with space`,
		`/mnt/tab\011nl\012`: "/mnt/tab\tnl\n",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/not\8octal`:    `/mnt/not\8octal`,
		`/mnt/short\04`:      `/mnt/short\04`,
		`/mnt/trailing\`:     `/mnt/trailing\`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	text := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /root/my\040peers rw,nosuid,nodev,relatime shared:50 - fuse.dsftp dsftp rw,user_id=0
91 90 0:51 / /root/my\040peers rw - tmpfs tmpfs rw
92 22 0:52 / /root/my rw - fuse.sshfs x rw
`
	if got, want := typesAt(parse(text), "/root/my peers"), []string{"fuse.dsftp", "tmpfs"}; !slices.Equal(got, want) {
		t.Errorf("types at /root/my peers = %q, want %q", got, want)
	}
	if got := typesAt(parse(text), "/root/my\\040peers"); got != nil {
		t.Errorf("the escaped form matched: %q", got)
	}
	if got := typesAt(parse(text), "/nowhere"); got != nil {
		t.Errorf("types at /nowhere = %q, want none", got)
	}
}

func TestParseOf(t *testing.T) {
	text := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /root/my\040peers rw,nosuid shared:50 - fuse.dsftp dsftp rw,user_id=0
92 22 0:52 / /root/my rw - fuse.sshfs x rw
93 22 0:53 / /srv/peers rw - fuse.dsftp dsftp rw
`
	if got, want := pointsOf(parse(text), "fuse.dsftp"), []string{"/root/my peers", "/srv/peers"}; !slices.Equal(got, want) {
		t.Errorf("dsftp mounts = %q, want %q", got, want)
	}
}
