//go:build linux

package fs_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// dirNames lists a directory's names in order.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestLookupStartsListing: a lookup of a name not yet listed also starts
// fetching its listing (a speculative OPENDIR). For a directory the walk
// then gets the right entries; for a file the failed OPENDIR stays quiet
// and the file reads as usual; a file that became a directory on the peer
// lists its entries once --attr-ttl has passed.
func TestLookupStartsListing(t *testing.T) {
	src := t.TempDir()
	tree(t, src, 1<<10)
	if err := os.WriteFile(filepath.Join(src, "turns"), []byte("a file first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sshd := testenv.StartSSHD(t, src)
	mnt := mountDir(t)
	m := startMount(t, mnt, "--attr-ttl", "1s", "--identity", sshd.Client.Path, "--peer", "a="+sshd.URL())
	peer := filepath.Join(mnt, "a")

	// A file first, in the root never listed: its lookup starts a
	// listing of it too, which fails quietly.
	if fi, err := os.Stat(filepath.Join(peer, "turns")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("stat turns: %v, %v; want a regular file", fi, err)
	}
	// Straight to paths whose parents were never listed.
	if b, err := os.ReadFile(filepath.Join(peer, "many", "d1", "f01.txt")); err != nil || len(b) != 101 {
		t.Fatalf("many/d1/f01.txt: %d bytes, %v; want 101", len(b), err)
	}
	for _, d := range []string{"many", "many/d0", "many/d2", "with space"} {
		if got, want := dirNames(t, filepath.Join(peer, d)), dirNames(t, filepath.Join(src, d)); !slices.Equal(got, want) {
			t.Errorf("listing of %s = %q, want %q", d, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(peer, "turns")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("stat turns: %v, %v; want a regular file", fi, err)
	}
	if _, err := os.ReadDir(filepath.Join(peer, "turns")); err == nil {
		t.Fatal("listing a file succeeded")
	}

	// The file becomes a directory on the peer.
	if err := os.Remove(filepath.Join(src, "turns")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "turns", "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the new directory to be listed", func() bool {
		es, err := os.ReadDir(filepath.Join(peer, "turns"))
		return err == nil && len(es) == 1 && es[0].Name() == "inside"
	})

	if r := m.proc.Records("readdir failed"); len(r) > 0 {
		t.Errorf("a speculative listing of a file logged a failure: %+v", r)
	}
	if m.proc.Count("prefetch readdir") == 0 {
		t.Error("no speculative listing of a file was logged (debug)")
	}
}
