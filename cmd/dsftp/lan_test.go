package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/dsftp/dsftp/peers/lan"
)

func TestResolveDiscovery(t *testing.T) {
	for _, tc := range []struct {
		flag   string
		token  bool
		want   string
		notice bool
	}{
		{"", false, "lan", true},
		{"", true, "discord", false},
		{"lan", true, "lan", false},
		{"discord", false, "discord", false},
		{"discord,lan", false, "discord,lan", false},
		{" LAN , discord ", false, "discord,lan", false},
		{"off", true, "off", false},
	} {
		f := lanFlags{discovery: tc.flag, port: lan.Port}
		var out bytes.Buffer
		m, err := f.resolve(tc.token, &out)
		if err != nil {
			t.Errorf("%q token=%v: %v", tc.flag, tc.token, err)
			continue
		}
		if m.String() != tc.want {
			t.Errorf("%q token=%v: got %s, want %s", tc.flag, tc.token, m, tc.want)
		}
		if got := out.Len() > 0; got != tc.notice {
			t.Errorf("%q token=%v: notice %q", tc.flag, tc.token, out.String())
		}
		if tc.notice {
			line := out.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, "anyone") || !strings.Contains(line, "DSFTP_DISCORD_TOKEN") {
				t.Errorf("notice is not one line saying who can read and how to set up Discord: %q", line)
			}
		}
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
		_, err := tc.f.resolve(false, nil)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want a usage error containing %q", tc.f, err, tc.want)
		}
	}
}
