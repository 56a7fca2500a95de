package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestUPnPFlags(t *testing.T) {
	var f upnpFlags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse([]string{"--advertise", "VPS.example.org:2222", "--advertise", "[2001:db8::1]:22", "--no-upnp"}); err != nil {
		t.Fatal(err)
	}
	r, err := f.check()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Advertise, " ") != "vps.example.org:2222 [2001:db8::1]:22" || !r.NoUPnP || r.Lease != time.Hour ||
		r.NoRelay || r.RelayRate != 4<<20 || r.ReverseConns != 2 {
		t.Fatalf("got %+v", r)
	}
	if fl := fs.Lookup("upnp-lease"); fl == nil || !fl.Hidden {
		t.Error("--upnp-lease should exist and be hidden")
	}

	for _, bad := range [][]string{{"--advertise", "nohost"}, {"--advertise", "h:99999"}, {"--upnp-lease", "1ms"}, {"--relay-rate", "-1"}, {"--reverse-conns", "9"}} {
		var f upnpFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(bad); err != nil {
			t.Fatal(err)
		}
		_, err := f.check()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", bad, err)
		}
	}
}

// The UDP path's flags: --stun is repeatable, none turns it off, bad
// values and ports are usage errors; $DSFTP_STUN is the default.
func TestQUICFlags(t *testing.T) {
	parse := func(args ...string) *upnpFlags {
		var f upnpFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	t.Setenv(envSTUN, "")
	f := parse()
	r, err := f.check()
	if err != nil || r.NoQUIC || r.UDPPort != 0 || strings.Join(r.STUN, ",") != "stun.l.google.com:19302,stun.cloudflare.com:3478" {
		t.Fatalf("defaults: %+v, %v", r, err)
	}
	f = parse("--stun", "a.example:3478", "--stun", "b.example:19302", "--udp-port", "4000")
	if r, err = f.check(); err != nil || r.UDPPort != 4000 || strings.Join(r.STUN, ",") != "a.example:3478,b.example:19302" {
		t.Fatalf("--stun twice, --udp-port: %+v, %v", r, err)
	}
	f = parse("--stun", "none", "--no-quic")
	if r, err = f.check(); err != nil || r.STUN != nil || !r.NoQUIC {
		t.Fatalf("--stun none --no-quic: %+v, %v", r, err)
	}
	t.Setenv(envSTUN, "none")
	f = parse()
	if r, err = f.check(); err != nil || r.STUN != nil {
		t.Fatalf("%s=none: %+v, %v", envSTUN, r, err)
	}
	for _, bad := range [][]string{{"--stun", "nohostport"}, {"--stun", "none", "--stun", "a:1"}, {"--stun", "a:0"}, {"--udp-port", "70000"}} {
		f := parse(bad...)
		_, err := f.check()
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", bad, err)
		}
	}
}

// --turn is repeatable and off by default; $DSFTP_TURN is the default; a
// malformed URL is a usage error that does not show the password, and
// --help shows no credentials.
func TestTURNFlags(t *testing.T) {
	parse := func(args ...string) (*upnpFlags, *pflag.FlagSet) {
		var f upnpFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &f, fs
	}
	t.Setenv(envSTUN, "none")
	t.Setenv(envTURN, "")
	f, _ := parse()
	if r, err := f.check(); err != nil || len(r.TURN) != 0 {
		t.Fatalf("default: %+v, %v; want no TURN server", r, err)
	}
	f, _ = parse("--turn", "turn://u:SECRET1@turn1.example:3478", "--turn", "turn://u:SECRET2@turn2.example")
	r, err := f.check()
	if err != nil || fmt.Sprint(r.TURN) != "[turn://turn1.example:3478 turn://turn2.example:3478]" {
		t.Fatalf("--turn twice: %v, %v", r.TURN, err)
	}
	t.Setenv(envTURN, "turn://u:SECRET3@turn3.example:3479")
	f, fs := parse()
	if r, err = f.check(); err != nil || fmt.Sprint(r.TURN) != "[turn://turn3.example:3479]" {
		t.Fatalf("%s: %v, %v", envTURN, r.TURN, err)
	}
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if !strings.Contains(help.String(), "--turn turn://USER:PASS@HOST:PORT") || strings.Contains(help.String(), "SECRET") {
		t.Errorf("--help with %s set:\n%s", envTURN, help.String())
	}
	for _, bad := range [][]string{
		{"--turn", "turn://u:SECRET4@h:0"},
		{"--turn", "turns://u:SECRET4@h"},
		{"--turn", "u:SECRET4@h:3478"},
		{"--turn", "turn://u:SECRET4@h", "--no-quic"},
	} {
		f, _ := parse(bad...)
		_, err := f.check()
		var ue usageError
		if !errors.As(err, &ue) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%v: got %v, want a usage error without the password", bad, err)
		}
	}
	t.Setenv(envTURN, "turn://u:SECRET5@h:99999")
	f, _ = parse()
	if _, err := f.check(); err == nil || !strings.Contains(err.Error(), "$"+envTURN) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("bad %s: %v; want an error naming it without the password", envTURN, err)
	}
}
