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
