package policy

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// errBadPath is returned for client paths that can never name a file in the
// share (a NUL byte, for instance). It maps to SSH_FX_FAILURE at the client.
var errBadPath = errors.New("invalid path")

// clientToRel turns a path as the client sent it into a path relative to the
// share root, for use with os.Root. The client sees the share as "/", so both
// "/a/b" and "a/b" name DIR/a/b, and ".." never climbs above "/" (it is
// cleaned away lexically, the way sshd's chroot would). The result is always
// filepath.IsLocal; os.Root then refuses symlinks that leave the root.
func clientToRel(p string) (string, error) {
	return clientToRelOn(p, runtime.GOOS == "windows")
}

// clientToRelOn is clientToRel with Windows rules when windows is set:
// SFTP paths use "/" only, so a "\" (a separator to Windows) or a ":"
// (a drive letter or an alternate data stream) in a client path never
// names a file in the share there.
func clientToRelOn(p string, windows bool) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in path", errBadPath)
	}
	if windows && strings.ContainsAny(p, `\:`) {
		return "", fmt.Errorf("%w: \\ or : in a path", errBadPath)
	}
	clean := path.Clean("/" + p)
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		return ".", nil
	}
	if !filepath.IsLocal(rel) {
		// Cannot happen after Clean("/"+p); kept as a second wall.
		return "", fmt.Errorf("%w: %q leaves the share", errBadPath, p)
	}
	return rel, nil
}

// clientPath is the inverse of clientToRel: the absolute path the client
// sees for rel.
func clientPath(rel string) string {
	if rel == "." || rel == "" {
		return "/"
	}
	return "/" + filepath.ToSlash(rel)
}

// linkTargetForClient decides what readlink shows for the symlink at rel
// (relative to the share root, whose real path is rootReal) with the link
// text target. A relative target that stays inside the share is shown as
// is. An absolute target inside the share is shown relative to the link's
// directory, so that clients (sshfs, which resolves links itself) land on
// the same file. Targets that point outside the share are refused:
// following them fails anyway, and the text would leak paths of the
// sharing machine (home directory names and the like).
func linkTargetForClient(rootReal, rel, target string) (string, bool) {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return "", false
	}
	if filepath.IsAbs(target) {
		inside, ok := absInside(rootReal, target)
		if !ok {
			return "", false
		}
		r, err := filepath.Rel(filepath.Dir(rel), inside)
		if err != nil {
			return "", false
		}
		return filepath.ToSlash(r), true
	}
	joined := filepath.Join(filepath.Dir(rel), target)
	if joined != "." && !filepath.IsLocal(joined) {
		return "", false
	}
	return target, true
}

// absInside maps an absolute path on the sharing machine to a path
// relative to the share root, if it lies inside (lexically).
func absInside(rootReal, target string) (string, bool) {
	r, err := filepath.Rel(rootReal, filepath.Clean(target))
	if err != nil || (r != "." && !filepath.IsLocal(r)) {
		return "", false
	}
	return r, true
}

// ClientError rewrites the error of the operation op on the client path
// p so that a client never sees a path of the host: an error naming a
// path names p instead, and os.Root's refusal of a path that leaves the
// share reads as "Permission denied".
func ClientError(err error, op, p string) error {
	var pe *os.PathError
	var le *os.LinkError
	if err == nil || errors.As(err, &pe) && pe.Path == clientPathOf(p) {
		return err
	}
	if errors.As(err, &pe) || errors.As(err, &le) || isEscape(err) {
		rel, rerr := clientToRel(p)
		if rerr != nil {
			return rerr
		}
		return clientError(op, rel, err)
	}
	return err
}

// clientError turns an error about rel into what the client may see: the
// path as the client knows it and the errno, never a path of the host.
func clientError(op, rel string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	if isEscape(err) {
		err = errEscape
	}
	return &os.PathError{Op: op, Path: clientPath(rel), Err: err}
}

// clientPathOf is the cleaned client path for p, "" if p is invalid.
func clientPathOf(p string) string {
	rel, err := clientToRel(p)
	if err != nil {
		return ""
	}
	return clientPath(rel)
}

// isEscape reports os.Root's refusal of a path that leaves the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}
