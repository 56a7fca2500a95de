//go:build linux

package testenv

import (
	"reflect"
	"testing"
)

func TestTmuxDiscoveryDefault(t *testing.T) {
	t.Setenv("DSFTP_DISCORD_TOKEN", "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"dsftp", "shell"}, []string{"env", "DSFTP_DISCOVERY=off", "DSFTP_STUN=none", "dsftp", "shell"}},
		{[]string{"env", "A=b", "dsftp"}, []string{"env", "A=b", "DSFTP_DISCOVERY=off", "DSFTP_STUN=none", "dsftp"}},
		{[]string{"env", "DSFTP_DISCOVERY=lan", "dsftp"}, []string{"env", "DSFTP_DISCOVERY=lan", "DSFTP_STUN=none", "dsftp"}},
		{[]string{"env", "DSFTP_DISCORD_TOKEN=x", "dsftp"}, []string{"env", "DSFTP_DISCORD_TOKEN=x", "DSFTP_STUN=none", "dsftp"}},
		{[]string{"env", "DSFTP_DISCORD_TOKEN=", "dsftp", "A=b"}, []string{"env", "DSFTP_DISCORD_TOKEN=", "DSFTP_DISCOVERY=off", "DSFTP_STUN=none", "dsftp", "A=b"}},
	} {
		if got := tmuxDiscoveryDefault(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("tmuxDiscoveryDefault(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
