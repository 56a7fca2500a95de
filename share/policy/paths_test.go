package policy

import "testing"

// TestClientPathsWindowsRules checks, on any OS, the rules a Windows
// share applies to client paths: "\" and ":" never reach the disk, so no
// drive letter, UNC path or alternate data stream can be named.
func TestClientPathsWindowsRules(t *testing.T) {
	for _, p := range []string{`C:\Windows`, `C:/Windows`, `/c:/x`, `a\..\..\x`, `\\server\share\x`, `file.txt:stream`, `sub\b.txt`} {
		if rel, err := clientToRelOn(p, true); err == nil {
			t.Errorf("windows rules: %q -> %q; want refused", p, rel)
		}
	}
	for p, want := range map[string]string{"/a/b.txt": "a/b.txt", "a/../b": "b", "/../../x": "x", "/": "."} {
		if rel, err := clientToRelOn(p, true); err != nil || rel != want {
			t.Errorf("windows rules: %q -> %q, %v; want %q", p, rel, err, want)
		}
	}
	// Elsewhere "\" is an ordinary file name character.
	if rel, err := clientToRelOn(`sub\b.txt`, false); err != nil || rel != `sub\b.txt` {
		t.Errorf(`unix rules: sub\b.txt -> %q, %v`, rel, err)
	}
}
