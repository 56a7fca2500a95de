package peers

import (
	"strings"
	"testing"
)

func TestParsePeerFlag(t *testing.T) {
	fp := "SHA256:5QP/K35WtFaQYgmq79abPM5tZmmARvPtJyuMZ9NKniE"
	cases := []struct {
		in                     string
		name, addr, user, path string
		fp                     string
	}{
		{"a=sftp://host", "a", "host:22", "", "", ""},
		{"bob=sftp://me@10.0.0.2:2222/srv/share?fingerprint=" + fp, "bob", "10.0.0.2:2222", "me", "/srv/share", fp},
		{"v6=sftp://[::1]:2022/", "v6", "[::1]:2022", "", "/", ""},
		{"x=sftp://h/a//b/../c", "x", "h:22", "", "/a/c", ""},
	}
	for _, c := range cases {
		p, err := ParsePeerFlag(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if p.Name != c.name || len(p.Addrs) != 1 || p.Addrs[0] != c.addr || p.User != c.user || p.Path != c.path ||
			p.HostKeyFingerprint != c.fp || p.Source != SourceFlag {
			t.Errorf("%s: got %+v", c.in, p)
		}
		if c.fp != "" && p.ID != c.fp {
			t.Errorf("%s: ID %q, want the fingerprint", c.in, p.ID)
		}
		if c.fp == "" && p.ID == "" {
			t.Errorf("%s: empty ID", c.in)
		}
	}
}

func TestParsePeerFlagErrors(t *testing.T) {
	for in, want := range map[string]string{
		"sftp://host":                          "NAME=",
		"=sftp://host":                         "NAME",
		"a=http://host":                        "scheme",
		"a=sftp:///path":                       "no host",
		"a=sftp://u:pw@host":                   "passwords",
		"a=sftp://host:99999":                  "port",
		"a=sftp://host?fingerprint=MD5:aa":     "SHA256:",
		"a=sftp://host?fingerprint=SHA256:abc": "43 base64",
		"a=sftp://host?fingerprint=SHA256:" + strings.Repeat("A", 43) + "&x=1": "unknown query",
	} {
		_, err := ParsePeerFlag(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", in, err, want)
		}
	}
}
