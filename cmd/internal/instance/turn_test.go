package instance

import (
	"fmt"
	"testing"
)

// Our relay punches only the peer's candidates a TURN server can reach:
// public IPv4 ones.
func TestPublicCandidates(t *testing.T) {
	got := publicCandidates([]string{"198.51.100.7:2200", "192.168.1.5:2200", "10.0.0.2:2200", "127.0.0.1:2200",
		"169.254.1.1:2200", "[2001:db8::5]:2200", "[::ffff:203.0.113.9]:4000", "100.64.1.1:2200", "198.51.100.7:2200"})
	if fmt.Sprint(got) != "[198.51.100.7:2200 203.0.113.9:4000 100.64.1.1:2200]" {
		t.Errorf("publicCandidates = %v", got)
	}
}
