package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/pkg/sftp"
)

// maxLinkHops is how many symlinks one path may pass through, as the
// kernel's limit (40 on Linux).
const maxLinkHops = 40

// errNotShared is why a path through a symlink that leads to a hidden,
// ignored or excluded path fails, and errEscape why one through a
// symlink that leaves the share fails. Lookup answers both as "no such
// file", as for the hidden path itself; the target is not disclosed.
var (
	errNotShared = fmt.Errorf("symlink leads to a path that is not shared: %w", sftp.ErrSSHFxPermissionDenied)
	errEscape    = fmt.Errorf("symlink points outside the share: %w", sftp.ErrSSHFxPermissionDenied)
)

// View decides what of the share a client sees. A path is absent when
// any component is hidden (starts with "."), when it is or lies below an
// excluded mount, or when .dsftpignore matches it or a directory above
// it; an entry is also absent when it is withheld (see withheld: a key,
// a dsftp secret, a symlink out or to an absent path). Paths are
// resolved the way the kernel would, one component at a time through the
// root, so that a symlink cannot lead a client to what it could not name
// directly. A View is safe for concurrent use.
type View struct {
	root       *os.Root
	rootReal   string
	showHidden bool
	ignore     *ignoreRules    // nil: no .dsftpignore handling
	mounts     *excludedMounts // nil: nothing excluded
	secrets    *secretGuard    // nil: no file is withheld for its content
	log        *refusalLog     // what is left out or refused, for the sharing side

	// noatime is cleared after the kernel refuses O_NOATIME once (we are
	// neither the owner nor privileged), so later opens skip the retry.
	noatime atomic.Bool
}

// split returns the components of a root-relative path ("." has none).
func split(rel string) []string {
	if rel == "." || rel == "" {
		return nil
	}
	return strings.Split(filepath.ToSlash(rel), "/")
}

// join appends a component to a root-relative path.
func join(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// lexicallyAbsent reports what can be told from the path alone: a hidden
// component or a component that is an excluded mount. Every component
// but the last is a directory, so ignore rules apply to them too.
func (v *View) lexicallyAbsent(rel string) bool {
	comps := split(rel)
	prefix := "."
	for i, c := range comps {
		prefix = join(prefix, c)
		if !v.showHidden && strings.HasPrefix(c, ".") {
			return true
		}
		if v.mounts.has(prefix) {
			return true
		}
		if i < len(comps)-1 && v.ignore.match(prefix, true) {
			return true
		}
	}
	return false
}

// absent reports whether rel, whose last component is a directory when
// isDir, is not shared.
func (v *View) absent(rel string, isDir bool) bool {
	if rel == "." {
		return false
	}
	return v.lexicallyAbsent(rel) || v.ignore.match(rel, isDir)
}

// childAbsent is absent for an entry of a directory whose parent is
// already known to be shown: only the entry's own name counts.
func (v *View) childAbsent(dir, name string, isDir bool) bool {
	if !v.showHidden && strings.HasPrefix(name, ".") {
		return true
	}
	p := join(dir, name)
	return v.mounts.has(p) || v.ignore.match(p, isDir)
}

// errAbsent is find's answer for a path the view does not show.
var errAbsent = errors.New("not shared")

// find looks up the root-relative path req (see Lookup).
func (v *View) find(req string, follow bool) (Entry, error) {
	if v.lexicallyAbsent(req) {
		return Entry{}, errAbsent
	}
	real, fi, err := v.resolve(req, follow)
	if isRefusedLink(err) {
		return Entry{}, errAbsent
	}
	if err != nil {
		return Entry{}, err
	}
	isDir := fi.IsDir()
	if v.ignore.match(req, isDir) || real != req && v.absent(real, isDir) {
		return Entry{}, errAbsent
	}
	if v.withheld(real, fi) != "" {
		return Entry{}, errAbsent
	}
	return Entry{req: req, real: real, fi: fi}, nil
}

// resolve follows the symlinks on rel, one component at a time through
// the root, and returns the path they lead to and its Lstat. A final
// symlink is followed only when follow is set. Intermediate paths may be
// hidden: only where a path ends counts, as for the kernel's lookup. It
// holds the directory reached so far open, so each component costs one
// lstat (and one open for a directory), whatever the depth.
func (v *View) resolve(rel string, follow bool) (string, fs.FileInfo, error) {
	w := walker{top: v.root, dir: v.root, cur: "."}
	defer w.close()
	todo := split(rel)
	hops := 0
	var fi fs.FileInfo
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if w.cur == "." {
				return "", nil, errEscape
			}
			if err := w.jump(path.Dir(w.cur)); err != nil {
				return "", nil, err
			}
			fi = nil
			continue
		}
		if v.mounts.has(join(w.cur, c)) {
			// A link led here: never touch an excluded mount, not even
			// with a stat (another dsftp serving it may be frozen).
			return "", nil, errNotShared
		}
		var err error
		if fi, err = w.dir.Lstat(c); err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 || (len(todo) == 0 && !follow) {
			if len(todo) > 0 {
				if err := w.descend(c); err != nil {
					return "", nil, err
				}
			} else {
				w.cur = join(w.cur, c)
			}
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", nil, syscall.ELOOP
		}
		target, err := w.dir.Readlink(c)
		if err != nil {
			return "", nil, err
		}
		if filepath.IsAbs(target) {
			inside, ok := absInside(v.rootReal, target)
			if !ok {
				return "", nil, errEscape
			}
			if err := w.jump("."); err != nil {
				return "", nil, err
			}
			todo = append(split(filepath.ToSlash(inside)), todo...)
		} else {
			todo = append(split(filepath.ToSlash(target)), todo...)
		}
		fi = nil
	}
	if fi == nil { // the root, or a path that ended on ".."
		var err error
		if fi, err = v.root.Lstat(w.cur); err != nil {
			return "", nil, err
		}
	}
	return w.cur, fi, nil
}

// walker is resolve's position: the root-relative path cur and the
// directory it names, held open.
type walker struct {
	top *os.Root // the share
	dir *os.Root // cur, opened; top itself at "."
	cur string
}

// descend moves into the subdirectory name of cur.
func (w *walker) descend(name string) error {
	d, err := w.dir.OpenRoot(name)
	if err != nil {
		return err
	}
	w.close()
	w.dir, w.cur = d, join(w.cur, name)
	return nil
}

// jump moves to rel, a directory without symlinks, from the top.
func (w *walker) jump(rel string) error {
	d := w.top
	if rel != "." {
		var err error
		if d, err = w.top.OpenRoot(rel); err != nil {
			return err
		}
	}
	w.close()
	w.dir, w.cur = d, rel
	return nil
}

func (w *walker) close() {
	if w.dir != w.top {
		w.dir.Close()
	}
	w.dir = w.top
}

// targetShown reports whether the target text of the symlink at linkReal
// names a shown path. Only the text counts: where a chain of links ends
// is checked when the link is followed, and showing the text of a link
// to a shown path discloses nothing.
func (v *View) targetShown(linkReal, target string) bool {
	var t string
	if filepath.IsAbs(target) {
		inside, ok := absInside(v.rootReal, target)
		if !ok {
			return false
		}
		t = filepath.ToSlash(inside)
	} else {
		t = path.Join(path.Dir(linkReal), filepath.ToSlash(target))
		if t != "." && !filepath.IsLocal(t) {
			return false
		}
	}
	if v.lexicallyAbsent(t) {
		return false
	}
	isDir := false
	if _, fi, err := v.resolve(t, true); err == nil {
		isDir = fi.IsDir()
	}
	return !v.ignore.match(t, isDir)
}
