package main

import (
	"errors"
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
