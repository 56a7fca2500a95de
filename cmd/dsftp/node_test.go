//go:build linux

package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// The tests start dsftp only through testenv.StartNode and RunNode, and
// read its state from the JSON log records and --json outputs these give;
// the helpers below are the records several tests wait for.

// noToken keeps a node from finding a Discord token in the test's
// environment.
var noToken = []string{"DSFTP_DISCORD_TOKEN="}

// runDsftp runs `dsftp args...` to its end, at most two minutes.
func runDsftp(t testing.TB, o testenv.NodeOptions, args ...string) *testenv.Node {
	t.Helper()
	return testenv.RunNode(t, o, 2*time.Minute, args...)
}

// listPeers runs `dsftp peers --json` with args and returns its rows.
func listPeers(t testing.TB, o testenv.NodeOptions, args ...string) []instance.Listed {
	t.Helper()
	n := runDsftp(t, o, append([]string{"peers", "--json"}, args...)...)
	if n.ExitCode() != 0 {
		t.Fatalf("dsftp peers --json: exit %d\n%s", n.ExitCode(), n.Output)
	}
	var rows []instance.Listed
	if err := json.Unmarshal([]byte(n.Stdout()), &rows); err != nil {
		t.Fatalf("parse dsftp peers --json %q: %v", n.Stdout(), err)
	}
	return rows
}
