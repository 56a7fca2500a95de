package download

import "testing"

// TestWindowsNames checks, on any OS, the names a download on Windows
// skips, and that the same names are fine elsewhere.
func TestWindowsNames(t *testing.T) {
	for _, name := range []string{"a:b", "what?.txt", "star*", `quote".txt`, "pipe|x", "less<", "trailing.", "trailing ", "CON", "con.txt", "Aux", "NUL.tar.gz", "COM1", "lpt9.log", "tab\tname"} {
		if err := safeNameOn(name, true); err == nil {
			t.Errorf("windows: %q accepted; want skipped", name)
		}
		if name != "tab\tname" {
			if err := safeNameOn(name, false); err != nil {
				t.Errorf("unix: %q refused: %v", name, err)
			}
		}
	}
	for _, name := range []string{"photo.jpg", "CONFIG.txt", "com10", "lpt", "a.b.c", "notes (1).md", "ünïcode"} {
		if err := safeNameOn(name, true); err != nil {
			t.Errorf("windows: %q refused: %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "nul\x00"} {
		if safeNameOn(name, false) == nil || safeNameOn(name, true) == nil {
			t.Errorf("%q accepted; want refused everywhere", name)
		}
	}
}
