//go:build linux

package policy

import (
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestListingVerdictsRemembered: a repeated listing reads no file, a file
// that changes is read again, and a key written into a listed file makes
// it disappear.
func TestListingVerdictsRemembered(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), []byte("text\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := testView(t, dir, nil)
	vc := v.secrets.verdicts
	vc.settle = 0
	if got := names(t, v, "/"); len(got) != n {
		t.Fatalf("listed %d files; want %d", len(got), n)
	}
	cold := vc.scans.Load()
	if cold != n {
		t.Errorf("first listing scanned %d files; want %d", cold, n)
	}
	for range 3 {
		names(t, v, "/")
		for i := range 10 {
			if _, err := v.Lookup("stat", fmt.Sprintf("/f%03d.txt", i), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if warm := vc.scans.Load() - cold; warm != 0 {
		t.Errorf("repeated listings and stats scanned %d files; want 0", warm)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: make([]byte, 64)})
	if err := os.WriteFile(filepath.Join(dir, "f007.txt"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	got := names(t, v, "/")
	if slices.Contains(got, "f007.txt") || len(got) != n-1 {
		t.Errorf("after a key was written into f007.txt the listing has %d names (f007.txt: %v)", len(got), slices.Contains(got, "f007.txt"))
	}
	if again := vc.scans.Load() - cold; again != 1 {
		t.Errorf("after one file changed, the listing scanned %d files; want 1", again)
	}
}

// TestVerdictCacheBound: the cache never holds more than its bound, keeps
// the most recent verdicts once its generation is old enough, and
// remembers no verdict on a file changed within the settle time.
func TestVerdictCacheBound(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	c := newVerdictCache()
	c.settle, c.max = 0, 1024
	k, _ := keyOf(fi)
	now := time.Now()
	for i := range 3 * c.max {
		k.ino = uint64(i)
		c.mu.Lock()
		c.putLocked(k, verdict{why: "x"}, now.Add(time.Duration(i)*time.Second))
		c.mu.Unlock()
		if c.len() > c.max {
			t.Fatalf("after %d verdicts the cache holds %d; bound %d", i+1, c.len(), c.max)
		}
	}
	c.put(fi, verdict{why: "real"}, now.Add(time.Hour*24))
	if v, ok := c.get(fi); !ok || v.why != "real" {
		t.Errorf("the latest verdict is gone: %v %v", v, ok)
	}
	fresh := newVerdictCache()
	fresh.put(fi, verdict{}, time.Now())
	if _, ok := fresh.get(fi); ok {
		t.Errorf("a verdict on a file changed %v ago was remembered; settle is %v", time.Since(fi.ModTime()), fresh.settle)
	}
}

// TestVerdictCacheBiggerDirectory: a directory of more files than the
// cache holds, listed again within a generation's lifetime, reads only
// the files beyond the cache's size, not every file again.
func TestVerdictCacheBiggerDirectory(t *testing.T) {
	dir := t.TempDir()
	const n, bound = 150, 100
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), []byte("text\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := testView(t, dir, nil)
	vc := v.secrets.verdicts
	vc.settle, vc.max = 0, bound
	for round := range 3 {
		before := vc.scans.Load()
		if got := names(t, v, "/"); len(got) != n {
			t.Fatalf("round %d listed %d files; want %d", round, len(got), n)
		}
		scanned := vc.scans.Load() - before
		want := int64(n - bound)
		if round == 0 {
			want = n
		}
		if scanned != want {
			t.Errorf("listing %d scanned %d of %d files with room for %d verdicts; want %d", round+1, scanned, n, bound, want)
		}
		if vc.len() > bound {
			t.Errorf("the cache holds %d verdicts; bound %d", vc.len(), bound)
		}
	}
}

// len is the number of verdicts remembered.
func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
