//go:build linux

package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withOwnXDG gives a started process its own configuration and state
// directories (unless env names them): without --host-key, dsftp keeps
// its host key in $XDG_CONFIG_HOME/dsftp and remembers peer names in
// $XDG_STATE_HOME/dsftp, so two processes of one test must not share
// them (they would be the same peer), and no test may touch the real
// home directory. Pass XDG_CONFIG_HOME=DIR in env to keep one identity
// across restarts.
func withOwnXDG(t testing.TB, env []string) []string {
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	for _, k := range []string{"XDG_CONFIG_HOME", "XDG_STATE_HOME"} {
		if !has(k) {
			env = append(env, k+"="+t.TempDir())
		}
	}
	return env
}

// isolateXDG points this test process (and so every dsftp it runs
// without Start) at configuration and state directories of its own,
// below dir, never at the real home.
func isolateXDG(dir string) {
	for k, sub := range map[string]string{"XDG_CONFIG_HOME": "config", "XDG_STATE_HOME": "state"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o700); err == nil {
			os.Setenv(k, p)
		}
	}
}
