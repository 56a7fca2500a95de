package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/lan"
)

func TestResolveDiscovery(t *testing.T) {
	for _, tc := range []struct {
		flag   string
		token  bool
		want   instance.Methods
		notice bool
	}{
		{"", false, instance.Methods{LAN: true}, true},
		{"", true, instance.Methods{Discord: true}, false},
		{"lan", true, instance.Methods{LAN: true}, false},
		{"discord", false, instance.Methods{Discord: true}, false},
		{"discord,lan", false, instance.Methods{Discord: true, LAN: true}, false},
		{" LAN , discord ", false, instance.Methods{Discord: true, LAN: true}, false},
		{"off", true, instance.Methods{}, false},
	} {
		t.Setenv(envDiscovery, "")
		f := lanFlags{discovery: tc.flag, port: lan.Port}
		m, err := f.resolve(tc.token)
		if err != nil {
			t.Errorf("%q token=%v: %v", tc.flag, tc.token, err)
			continue
		}
		if m != tc.want {
			t.Errorf("%q token=%v: got %+v, want %+v", tc.flag, tc.token, m, tc.want)
		}
		if f.defaulted != tc.notice {
			t.Errorf("%q token=%v: defaulted=%v", tc.flag, tc.token, f.defaulted)
		}
	}
	if strings.Contains(instance.LANNotice, "\n") || !strings.Contains(instance.LANNotice, "anyone") || !strings.Contains(instance.LANNotice, envDiscordToken) {
		t.Errorf("notice is not one line saying who can read and how to set up Discord: %q", instance.LANNotice)
	}
	// $DSFTP_DISCOVERY is the default; the flag wins.
	t.Setenv(envDiscovery, "off")
	f := lanFlags{port: lan.Port}
	if m, err := f.resolve(false); err != nil || m != (instance.Methods{}) || f.defaulted {
		t.Errorf("DSFTP_DISCOVERY=off: %+v %v defaulted=%v", m, err, f.defaulted)
	}
	f = lanFlags{discovery: "lan", port: lan.Port}
	if m, err := f.resolve(true); err != nil || m != (instance.Methods{LAN: true}) {
		t.Errorf("--discovery lan with DSFTP_DISCOVERY=off: %+v %v", m, err)
	}
}

func TestResolveDiscoveryErrors(t *testing.T) {
	for _, tc := range []struct {
		f    lanFlags
		want string
	}{
		{lanFlags{discovery: "carrier-pigeon", port: lan.Port}, "want discord, lan or off"},
		{lanFlags{discovery: "lan,", port: lan.Port}, "want discord, lan or off"},
		{lanFlags{discovery: "off,lan", port: lan.Port}, "cannot be combined"},
		{lanFlags{discovery: "lan", port: 0}, "--lan-port 0"},
		{lanFlags{discovery: "lan", port: 70000}, "--lan-port 70000"},
		{lanFlags{discovery: "lan", port: lan.Port, ifaces: []string{"nosuchif0"}}, `--lan-interface "nosuchif0"`},
	} {
		t.Setenv(envDiscovery, "")
		_, err := tc.f.resolve(false)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want a usage error containing %q", tc.f, err, tc.want)
		}
	}
}
