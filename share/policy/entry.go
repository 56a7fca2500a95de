package policy

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// Entry is a client path looked up through the view: one the client may
// see, as it was at the look-up.
type Entry struct {
	req  string      // the path as the client named it, root-relative
	real string      // the same with every symlink resolved (but a final one, for lstat)
	fi   fs.FileInfo // Lstat of real
}

// Path is the entry's path as the client sees it ("/" is the share).
func (e Entry) Path() string { return clientPath(e.req) }

// Info describes the entry: the file a followed symlink leads to, or the
// symlink itself when the look-up did not follow a final one.
func (e Entry) Info() fs.FileInfo { return e.fi }

// Lookup resolves the client path p for the operation op (named in
// errors). follow says whether a final symlink is followed (stat, open)
// or not (lstat, readlink). A path the client may not see fails with
// ENOENT, as one that is not there; no error names a path of the host.
func (v *View) Lookup(op, p string, follow bool) (Entry, error) {
	req, err := clientToRel(p)
	if err != nil {
		return Entry{}, err
	}
	e, err := v.find(req, follow)
	if errors.Is(err, errAbsent) {
		return Entry{}, &os.PathError{Op: op, Path: clientPath(req), Err: syscall.ENOENT}
	}
	if err != nil {
		return Entry{}, clientError(op, req, err)
	}
	return e, nil
}

// RealPath canonicalises a client path: the share is "/", so the real
// path of "." is "/". The path need not exist (clients ask before
// uploads), but a path that is not shared is not there (ENOENT).
func (v *View) RealPath(p string) (string, error) {
	rel, err := clientToRel(p)
	if err != nil {
		return "", err
	}
	if _, err := v.find(rel, false); errors.Is(err, errAbsent) {
		return "", &os.PathError{Op: "realpath", Path: clientPath(rel), Err: syscall.ENOENT}
	}
	return clientPath(rel), nil
}

// Readlink shows the target of the symlink e (looked up without
// following it) in the client's view of the share: see
// linkTargetForClient. An entry that is no symlink fails with EINVAL; a
// link changed since the look-up to leave the share or to lead to what is
// not shared is not there (ENOENT).
func (v *View) Readlink(e Entry) (string, error) {
	if e.fi.Mode()&fs.ModeSymlink == 0 {
		return "", &os.PathError{Op: "readlink", Path: e.Path(), Err: syscall.EINVAL}
	}
	target, err := v.root.Readlink(e.real)
	if err != nil {
		return "", clientError("readlink", e.req, err)
	}
	shown, ok := linkTargetForClient(v.rootReal, e.req, target)
	if !ok || !v.targetShown(e.real, target) {
		return "", &os.PathError{Op: "readlink", Path: e.Path(), Err: syscall.ENOENT}
	}
	return shown, nil
}
