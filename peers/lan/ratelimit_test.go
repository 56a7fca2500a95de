package lan

import (
	"fmt"
	"testing"
)

// TestLimiter: one source gets its own burst (two seconds' worth) and no
// more; the others still get theirs, until the total burst is used up.
func TestLimiter(t *testing.T) {
	l := newLimiter(100, 10, 1024)
	n := 0
	for range 1000 {
		if l.allow("10.0.0.1") {
			n++
		}
	}
	if n < 19 || n > 21 {
		t.Errorf("one source got %d of 1000 at once; want its burst of 20", n)
	}
	total := n
	for i := range 100 {
		for range 100 {
			if l.allow(fmt.Sprintf("10.0.1.%d", i)) {
				total++
			}
		}
	}
	if total < 200 || total > 220 { // a few refill while the loop runs
		t.Errorf("%d let through at once from 101 sources; want the total burst of 200", total)
	}
}
