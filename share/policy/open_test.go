//go:build linux

package policy

import (
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenChecksContent: a file too big for a listing to scan is listed,
// but an open finds the key in it and the file is not there; so is a file
// that a key was written into after its listing.
func TestOpenChecksContent(t *testing.T) {
	dir := t.TempDir()
	key := pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: make([]byte, 64)})
	big := append([]byte(strings.Repeat("ordinary text\n", (listScanMax+1)/14+1)), key...)
	if err := os.WriteFile(filepath.Join(dir, "big.log"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, logs := testView(t, dir, func(o *Options) { o.SecretDirs = []string{} })
	if got := names(t, v, "/"); !slices.Equal(got, []string{"big.log", "notes.txt"}) && !slices.Equal(got, []string{"notes.txt", "big.log"}) {
		t.Fatalf("listing = %q; want both files", got)
	}
	if b, err := readFile(v, "/big.log"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open /big.log = %d bytes, %v; want not found", len(b), err)
	}
	e, err := v.Lookup("open", "/notes.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), key, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := v.Open(e); !errors.Is(err, fs.ErrNotExist) {
		if f != nil {
			f.Close()
		}
		t.Errorf("open /notes.txt with a key written since its look-up: %v; want not found", err)
	}
	for _, p := range []string{"/big.log", "/notes.txt"} {
		if !strings.Contains(logs.String(), `msg="refused to serve a file" path=`+p+` why="private key (PEM)"`) {
			t.Errorf("no refusal of %s logged:\n%s", p, logs.String())
		}
	}
}
