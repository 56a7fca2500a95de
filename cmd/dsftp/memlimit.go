package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go's soft memory limit is what keeps the mount within its bound while
// GOGC is 400: garbage is collected before the heap passes it. Live data
// the mount must hold (the entries of big listings, the inodes the kernel
// keeps) can pass a fixed limit, and then the collector runs without
// pause and the mount crawls (a directory of 150,000 entries listed 17
// times slower than one of 100,000). So the limit follows the live heap:
// never below the bound, and half again above what is live.
const (
	liveHeapMetric = "/gc/heap/live:bytes"
	liveHeapEvery  = 250 * time.Millisecond
)

// followLiveHeap sets the soft memory limit to base and raises it (and
// lowers it again, not below base) as the live heap grows and shrinks,
// until ctx ends.
func followLiveHeap(ctx context.Context, base int64) {
	debug.SetMemoryLimit(base)
	sample := []metrics.Sample{{Name: liveHeapMetric}}
	t := time.NewTicker(liveHeapEvery)
	defer t.Stop()
	cur := base
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return // not measured by this runtime: the fixed limit stays
		}
		live := int64(sample[0].Value.Uint64())
		want := max(base, live+live/2)
		// Small moves are not worth a call.
		if d := want - cur; d > cur/16 || -d > cur/16 {
			debug.SetMemoryLimit(want)
			cur = want
		}
	}
}
