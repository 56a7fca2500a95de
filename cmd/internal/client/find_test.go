package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
)

// SplitSpec prefers the longest registered name before a colon; a spec
// without a colon is ErrSpec; FindPeer gives up at the deadline with a
// suggestion.
func TestSplitSpecAndFindPeer(t *testing.T) {
	reg := peers.NewRegistry("")
	reg.Upsert(peers.Peer{ID: "a", Name: "alice", Addrs: []string{"127.0.0.1:1"}})
	reg.Upsert(peers.Peer{ID: "b", Name: "alice:2", Addrs: []string{"127.0.0.1:1"}})
	for spec, want := range map[string][2]string{
		"alice:photos/cat.jpg": {"alice", "photos/cat.jpg"},
		"alice:2:x:y":          {"alice:2", "x:y"},
		"alice:":               {"alice", ""},
	} {
		name, path, err := SplitSpec(spec, reg)
		if err != nil || name != want[0] || path != want[1] {
			t.Errorf("SplitSpec(%q) = %q, %q, %v; want %q, %q", spec, name, path, err, want[0], want[1])
		}
	}
	if _, _, err := SplitSpec("alice", nil); !errors.Is(err, ErrSpec) {
		t.Errorf("SplitSpec without a colon: %v, want ErrSpec", err)
	}
	if Known("bob:x", reg) || !Known("alice:x", reg) {
		t.Error("Known disagrees with the registry")
	}
	_, _, err := FindPeer(context.Background(), reg, "alicf:x", time.Now(), "test", nil)
	if err == nil || !strings.Contains(err.Error(), `did you mean "alice"?`) {
		t.Errorf("FindPeer of a typo: %v, want a suggestion", err)
	}
}
