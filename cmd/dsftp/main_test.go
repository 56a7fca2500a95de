//go:build linux

package main

import (
	"os"
	"testing"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestMain removes the programs the tests built; run again with
// slowlorisEnv set, the test binary is the attacker of
// TestAttackSlowlorisSameAddress instead.
func TestMain(m *testing.M) {
	if spec := os.Getenv(slowlorisEnv); spec != "" {
		slowlorisMain(spec)
		return
	}
	testenv.Main(m)
}
