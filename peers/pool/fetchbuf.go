package pool

import (
	"math/bits"
	"sync"
)

// Buffers for Fetch, recycled by the caller (RecycleFetched). A fresh
// buffer per prefetched file costs more than the copy into it: the Go
// runtime hands large allocations fresh pages, and the kernel faults each
// 4 KiB page in and zeroes it (measured on loopback, 1000 files of 64 KiB
// read 16 at a time: 31,000 page faults per run against sshfs's 3,000).
// Sizes are rounded up to a quarter of their power of two, so a buffer
// is at most 25% larger than asked; the caller bounds memory by cap().
const (
	fetchBufMin = 4 << 10
	fetchBufMax = 1 << 20
)

var fetchBufs sync.Map // size class (int) -> *sync.Pool of *[]byte

// fetchBufClass rounds n up to its size class, or returns 0 for sizes not
// pooled.
func fetchBufClass(n int) int {
	if n <= 0 || n > fetchBufMax {
		return 0
	}
	n = max(n, fetchBufMin)
	step := 1 << (bits.Len(uint(n-1)) - 3) // a quarter of the power of two below
	return (n + step - 1) / step * step
}

func getFetchBuf(n int) []byte {
	class := fetchBufClass(n)
	if class == 0 {
		return make([]byte, n)
	}
	if p, ok := fetchBufs.Load(class); ok {
		if b, ok := p.(*sync.Pool).Get().(*[]byte); ok {
			return (*b)[:n]
		}
	}
	return make([]byte, n, class)
}

// RecycleFetched takes back the buffer of data Fetch returned, once
// nothing reads it any more; later fetches reuse it. Not calling it is
// fine (the garbage collector takes the buffer).
func RecycleFetched(data []byte) {
	class := fetchBufClass(cap(data))
	if class == 0 || class != cap(data) {
		return // not one of ours
	}
	p, _ := fetchBufs.LoadOrStore(class, &sync.Pool{})
	b := data[:cap(data)]
	p.(*sync.Pool).Put(&b)
}
