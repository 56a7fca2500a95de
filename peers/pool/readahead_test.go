//go:build linux

package pool

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// Eight files read sequentially at once, with a read-ahead budget of two
// windows: the chunks queued by all readers together stay within the
// budget plus the one chunk each read itself needs, every file arrives
// whole, and the budget is all given back once the readers close.
func TestReadAheadBudget(t *testing.T) {
	const files, size = 8, 6 << 20
	dir := t.TempDir()
	want := make([][]byte, files)
	for i := range want {
		want[i] = make([]byte, size)
		rand.Read(want[i])
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))), want[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := testenv.StartSSHD(t, dir)
	budget := int64(2 * maxWindow * ChunkSize)
	p := newPool(t, Options{Timeout: 5 * time.Second, ReadAheadMemory: budget, Identities: []ssh.Signer{s.Client.Signer}})
	ctx := testenv.Context(t, time.Minute)

	var peak atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if n := p.ahead.Load(); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range files {
		wg.Go(func() {
			r, err := p.OpenReader(ctx, peerOf(t, s), string(rune('a'+i)), size)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			got, err := io.ReadAll(io.NewSectionReader(r, 0, size))
			if err != nil || !bytes.Equal(got, want[i]) {
				t.Errorf("file %d: %d bytes, equal %v, err %v", i, len(got), bytes.Equal(got, want[i]), err)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watched
	// Each reader may hold the chunk its read needs (and its first read)
	// beyond the budget.
	if limit := budget + 2*files*ChunkSize; peak.Load() > limit {
		t.Errorf("read-ahead peaked at %d MiB, want at most %d MiB", peak.Load()>>20, limit>>20)
	}
	if peak.Load() == 0 {
		t.Error("no read-ahead was counted at all")
	}
	if n := p.ahead.Load(); n != 0 {
		t.Errorf("after every reader closed, %d bytes of read-ahead are still counted", n)
	}
	t.Logf("read-ahead peak %d MiB for %d files at once, budget %d MiB", peak.Load()>>20, files, budget>>20)
}
