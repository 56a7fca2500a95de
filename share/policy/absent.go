package policy

import (
	"errors"
	"io/fs"
)

// Why an entry is withheld, for the sharing side's log.
const (
	whyLinkOut      = "symlink leaves the share"
	whyLinkUnshared = "symlink leads to a path that is not shared"
)

// withheld reports why the entry at the resolved path rel, which the
// path rules show, is left out all the same, or "". A regular file is
// withheld when it holds a private key or a dsftp secret; a symlink when
// it leaves the share or leads to what is not shown. Such entries are
// absent, not refused: cp -a, rsync, tar and grep -r copy what is shared
// and exit 0, where an entry listed but refused would fail them.
func (v *View) withheld(rel string, fi fs.FileInfo) string {
	switch {
	case fi.Mode().IsRegular():
		if v.secrets == nil {
			return ""
		}
		return v.secrets.contentWhy(v.root, rel, fi)
	case fi.Mode()&fs.ModeSymlink != 0:
		return v.linkWhy(rel)
	}
	return ""
}

// linkWhy reports why the symlink at rel is withheld, or "". Its text
// counts (a dangling link into a hidden directory names it), then where
// it leads. A link that leads nowhere inside the share (dangling, a
// loop) is shown as the link it is: a copy of it is as broken as it.
func (v *View) linkWhy(rel string) string {
	target, err := v.root.Readlink(rel)
	if err != nil {
		return "" // no longer a link: the caller's lstat is stale
	}
	if _, ok := linkTargetForClient(v.rootReal, rel, target); !ok {
		return whyLinkOut
	}
	if !v.targetShown(rel, target) {
		return whyLinkUnshared
	}
	real, fi, err := v.resolve(rel, true)
	switch {
	case errors.Is(err, errNotShared):
		return whyLinkUnshared
	case isRefusedLink(err):
		return whyLinkOut
	case err != nil:
		return ""
	case v.absent(real, fi.IsDir()):
		return whyLinkUnshared
	case fi.Mode().IsRegular() && v.withheld(real, fi) != "":
		return whyLinkUnshared
	}
	return ""
}

// isRefusedLink reports resolve's refusal of a symlink: one that leaves
// the share or leads into an excluded mount.
func isRefusedLink(err error) bool {
	return errors.Is(err, errEscape) || errors.Is(err, errNotShared) || isEscape(err)
}
