package pace

import (
	"testing"
	"time"
)

func TestJitter(t *testing.T) {
	for range 1000 {
		if got := Jitter(10*time.Second, 20); got < 8*time.Second || got > 12*time.Second {
			t.Fatalf("Jitter(10s, 20%%) = %v, want 8s to 12s", got)
		}
	}
	if got := Jitter(0, 20); got != 0 {
		t.Errorf("Jitter(0) = %v", got)
	}
}
