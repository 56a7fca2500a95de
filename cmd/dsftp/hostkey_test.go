//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// Without --host-key a share keeps its host key across runs, in
// $XDG_CONFIG_HOME/dsftp/host_key (0600); a second dsftp running at the
// same time uses a key of its own for the run.
func TestHostKeyLasts(t *testing.T) {
	cfg := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + cfg}
	fingerprint := func(p *testenv.Process) string {
		p.WaitOutput(t, instance.ReadyPrefix, 60*time.Second)
		m := regexp.MustCompile(`host key\s+(SHA256:\S+)`).FindStringSubmatch(p.Output.String())
		if m == nil {
			t.Fatalf("no host key in the banner:\n%s", p.Output.String())
		}
		return m[1]
	}
	args := []string{"share", t.TempDir(), "--listen", "127.0.0.1:0", "--discovery", "off", "--no-upnp"}
	first := testenv.Start(t, env, testenv.Binary(t), args...)
	fp1 := fingerprint(first)
	other := testenv.Start(t, env, testenv.Binary(t), args...)
	if fp := fingerprint(other); fp == fp1 {
		t.Errorf("a second dsftp running at the same time has the same host key %s", fp)
	}
	first.Cmd.Process.Kill()
	first.Wait(10 * time.Second)
	fi, err := os.Stat(filepath.Join(cfg, "dsftp", "host_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v; want mode 0600", fi, err)
	}
	second := testenv.Start(t, env, testenv.Binary(t), args...)
	if fp := fingerprint(second); fp != fp1 {
		t.Errorf("host key changed across runs: %s, then %s", fp1, fp)
	}
}
