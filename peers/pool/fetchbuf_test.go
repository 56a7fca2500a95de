package pool

import "testing"

// TestFetchBufClasses: a fetch buffer is at most a quarter larger than
// asked, its length is what was asked, and only whole pooled buffers go
// back to the pools.
func TestFetchBufClasses(t *testing.T) {
	for _, n := range []int{1, 4095, 4096, 4097, 5000, 65535, 65536, 65537, 100_000, 256 << 10, 1<<20 - 1, 1 << 20} {
		b := getFetchBuf(n)
		if len(b) != n {
			t.Errorf("getFetchBuf(%d): len %d", n, len(b))
		}
		if c := cap(b); c < n || (n >= fetchBufMin && c > n+n/4) {
			t.Errorf("getFetchBuf(%d): cap %d, want [%d, %d]", n, c, n, n+n/4)
		}
		RecycleFetched(b)
		if again := getFetchBuf(n); len(again) != n || cap(again) < n {
			t.Errorf("getFetchBuf(%d) after recycling: len %d cap %d", n, len(again), cap(again))
		}
	}
	big := getFetchBuf(fetchBufMax + 1)
	if fetchBufClass(cap(big)) != 0 {
		t.Errorf("a buffer over %d bytes has a size class", fetchBufMax)
	}
	// A slice that is not a whole class buffer is left to the collector:
	// recycling it must not hand out a short buffer later.
	odd := make([]byte, 5000)
	RecycleFetched(odd)
	if b := getFetchBuf(5000); cap(b) < 5000 {
		t.Errorf("got a %d-byte buffer for 5000", cap(b))
	}
}
