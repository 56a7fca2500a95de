package punch

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseTURN(t *testing.T) {
	good := []struct {
		in, host, user, pass string
	}{
		{"turn://alice:s3cret@turn.example.org:3478", "turn.example.org:3478", "alice", "s3cret"},
		{"turn://alice:s3cret@turn.example.org", "turn.example.org:3478", "alice", "s3cret"},
		{"turn://alice:s3cret@198.51.100.7:443/", "198.51.100.7:443", "alice", "s3cret"},
		{"turn://alice:s3cret@[2001:db8::1]:3478?transport=udp", "[2001:db8::1]:3478", "alice", "s3cret"},
		{"turn://a%40b:p%3Aw%2Fd@h:1", "h:1", "a@b", "p:w/d"},
	}
	for _, g := range good {
		s, err := ParseTURN([]string{g.in})
		if err != nil {
			t.Errorf("ParseTURN(%q): %v", g.in, err)
			continue
		}
		if s[0].Host != g.host || s[0].user != g.user || s[0].pass != g.pass {
			t.Errorf("ParseTURN(%q) = %q %q %q; want %q %q %q", g.in, s[0].Host, s[0].user, s[0].pass, g.host, g.user, g.pass)
		}
	}
	bad := []struct{ in, want string }{
		{"", "the scheme must be turn"},
		{"turn.example.org:3478", "the scheme must be turn"},
		{"stun://alice:pw@h:3478", "the scheme must be turn"},
		{"turns://alice:pw@h:5349", "turns: (TURN over TLS) is not supported"},
		{"turn:alice:pw@h", "no server named"},
		{"turn://h:3478", "turn://h:3478: no user name and password"},
		{"turn://alice@h:3478", "both a user name and a password are needed"},
		{"turn://:pw@h:3478", "both a user name and a password are needed"},
		{"turn://alice:@h:3478", "both a user name and a password are needed"},
		{"turn://alice:pw@h:0", "the port must be a number from 1 to 65535"},
		{"turn://alice:pw@h:70000", "the port must be a number from 1 to 65535"},
		{"turn://alice:pw@h:3478/x", "a path, fragment or query"},
		{"turn://alice:pw@h:3478?transport=tcp", "a path, fragment or query"},
		{"turn://alice:pw@h:3478#f", "a path, fragment or query"},
		{"turn://alice:p w@h:3478", "not a URL"},
		{"turn://alice:pw@h:x", "not a URL"},
		{"turn://alice:" + strings.Repeat("p", 600) + "@h:3478", "longer than 513 bytes"},
	}
	for _, b := range bad {
		_, err := ParseTURN([]string{"turn://ok:ok@h", b.in})
		if err == nil {
			t.Errorf("ParseTURN(%q): no error", b.in)
			continue
		}
		if !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), "--turn (value 2 of 2): ") {
			t.Errorf("ParseTURN(%q) = %q; want it to name the value and say %q", b.in, err, b.want)
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "p w") {
			t.Errorf("ParseTURN(%q) error shows the password: %q", b.in, err)
		}
	}
}

// The credentials appear in no way of printing or logging a server.
func TestTURNServerHidesCredentials(t *testing.T) {
	s, err := ParseTURN([]string{"turn://alice:hunter2@turn.example.org:3478"})
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "server", s[0], "servers", s)
	for _, out := range []string{s[0].String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s[0], s[0], s[0], s), log.String()} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "alice") {
			t.Errorf("credentials shown: %q", out)
		}
		if !strings.Contains(out, "turn.example.org:3478") {
			t.Errorf("server not shown: %q", out)
		}
	}
}

// An error never quotes the password, however malformed the value.
func FuzzParseTURN(f *testing.F) {
	for _, s := range []string{"turn://u:SECRET@h:3478", "turn://u:SECRET@h:x", "turns://u:SECRET@h", "turn://u:SECRET@h/p?q#f", "turn://u:SE%zzCRET@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseTURN([]string{v})
		if err != nil {
			// Only the server part, after the last @, may be quoted.
			if strings.Contains(err.Error(), "SECRET") && !strings.Contains(v[strings.LastIndex(v, "@")+1:], "SECRET") {
				t.Fatalf("error shows the password: %q", err)
			}
			return
		}
		if s[0].user == "" || s[0].pass == "" || s[0].Host == "" {
			t.Fatalf("ParseTURN(%q) accepted %#v without credentials or host", v, s[0])
		}
		if strings.Contains(s[0].String(), s[0].pass) && !strings.Contains(s[0].Host, s[0].pass) {
			t.Fatalf("String shows the password: %q", s[0])
		}
	})
}
