package policy

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
)

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

// TestClientError: an error about a client path names that path, never a
// path of the host, and os.Root's refusal of an escape reads as
// "Permission denied".
func TestClientError(t *testing.T) {
	host := &os.PathError{Op: "open", Path: "/home/me/share/a/b", Err: syscall.ENOENT}
	got := ClientError(host, "open", "a//b/../b")
	var pe *os.PathError
	if !errors.As(got, &pe) || pe.Path != "/a/b" || !errors.Is(got, syscall.ENOENT) {
		t.Errorf("ClientError(host path) = %v; want open /a/b: ENOENT", got)
	}
	link := &os.LinkError{Op: "readlink", Old: "/home/me/share/l", New: "", Err: syscall.EINVAL}
	if got := ClientError(link, "readlink", "/l"); !errors.As(got, &pe) || pe.Path != "/l" || !errors.Is(got, syscall.EINVAL) {
		t.Errorf("ClientError(link error) = %v; want readlink /l: EINVAL", got)
	}
	escape := errors.New("openat a/../..: path escapes from parent")
	if got := ClientError(escape, "stat", "/x"); !errors.Is(got, sftp.ErrSSHFxPermissionDenied) || strings.Contains(got.Error(), "a/../..") {
		t.Errorf("ClientError(escape) = %v; want permission denied, naming /x only", got)
	}
	mine := &os.PathError{Op: "open", Path: "/a", Err: syscall.EISDIR}
	if got := ClientError(mine, "open", "a"); got != mine {
		t.Errorf("ClientError(an error naming the client path) = %v; want it unchanged", got)
	}
	if got := ClientError(host, "open", "a\x00b"); !errors.Is(got, errBadPath) {
		t.Errorf("ClientError with a bad client path = %v; want %v", got, errBadPath)
	}
	plain := errors.New("too many open handles")
	if got := ClientError(plain, "open", "/a"); got != plain || ClientError(nil, "open", "/a") != nil {
		t.Errorf("ClientError of an error without a path = %v; want it unchanged", got)
	}
}
