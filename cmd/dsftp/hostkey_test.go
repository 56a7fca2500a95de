//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// Without --host-key a share keeps its host key across runs, in
// $XDG_CONFIG_HOME/dsftp/host_key (0600); a second dsftp running at the
// same time uses a key of its own for the run.
func TestHostKeyLasts(t *testing.T) {
	cfg := t.TempDir()
	o := testenv.NodeOptions{Env: []string{"XDG_CONFIG_HOME=" + cfg}}
	fingerprint := func(p *testenv.Node) string {
		_, fp := p.ShareReady(t)
		return fp
	}
	args := []string{"share", t.TempDir(), "--listen", "127.0.0.1:0", "--discovery", "off", "--no-upnp"}
	first := testenv.StartNode(t, o, args...)
	fp1 := fingerprint(first)
	other := testenv.StartNode(t, o, args...)
	if fp := fingerprint(other); fp == fp1 {
		t.Errorf("a second dsftp running at the same time has the same host key %s", fp)
	}
	first.Cmd.Process.Kill()
	first.Wait(10 * time.Second)
	fi, err := os.Stat(filepath.Join(cfg, "dsftp", "host_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v; want mode 0600", fi, err)
	}
	second := testenv.StartNode(t, o, args...)
	if fp := fingerprint(second); fp != fp1 {
		t.Errorf("host key changed across runs: %s, then %s", fp1, fp)
	}
}
