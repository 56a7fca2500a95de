//go:build linux

package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkListing10k lists a directory of 10,000 files of 4 KiB through
// the view: cold (no verdict remembered, every file read for the key
// scan) and warm (every verdict remembered, no file read).
//
//	go test -run '^$' -bench Listing10k -benchtime 20x ./share/policy
func BenchmarkListing10k(b *testing.B) {
	const files = 10000
	dir := b.TempDir()
	body := []byte(strings.Repeat("an ordinary line of text, nothing secret\n", 100))
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%05d.txt", i)), body, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	v, _ := testView(b, dir, nil)
	vc := v.secrets.verdicts
	vc.settle = 0
	list := func(b *testing.B) {
		fis, err := readDir(v, "/")
		if err != nil || len(fis) != files {
			b.Fatalf("listed %d files, %v; want %d", len(fis), err, files)
		}
	}
	b.Run("cold", func(b *testing.B) {
		scans := vc.scans.Load()
		for b.Loop() {
			b.StopTimer()
			vc.mu.Lock()
			vc.cur, vc.old = map[uint64]packedVerdict{}, nil
			vc.mu.Unlock()
			b.StartTimer()
			list(b)
		}
		b.ReportMetric(float64(vc.scans.Load()-scans)/float64(b.N), "reads/op")
	})
	b.Run("warm", func(b *testing.B) {
		list(b)
		scans := vc.scans.Load()
		for b.Loop() {
			list(b)
		}
		b.ReportMetric(float64(vc.scans.Load()-scans)/float64(b.N), "reads/op")
	})
}

// BenchmarkVerdictCacheMemory reports the heap a full verdict cache holds
// (maxVerdicts entries).
func BenchmarkVerdictCacheMemory(b *testing.B) {
	var per float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newVerdictCache()
		for i := range maxVerdicts {
			c.putLocked(verdictKey{ino: uint64(i)}, verdict{tlen: 5, sum: uint64(i)}, time.Now())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / maxVerdicts
		runtime.KeepAlive(c)
	}
	b.ReportMetric(per, "B/verdict")
	b.ReportMetric(per*maxVerdicts/(1<<20), "MiB/full")
}
