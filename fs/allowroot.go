//go:build !windows

package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootOnly serves only the mount's owner and root: allow_root. The kernel
// knows only allow_other (libfuse, too, implements allow_root in its
// library), so the mount is made allow_other and every request that can
// reach a file or its name is checked here. Release, Forget and the like
// pass: they follow a request that was checked.
type rootOnly struct {
	fuse.RawFileSystem
	owner uint32
}

func (r rootOnly) denied(h *fuse.InHeader) bool {
	return h.Uid != 0 && h.Uid != r.owner
}

func (r rootOnly) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if r.denied(h) {
		return fuse.EACCES
	}
	return r.RawFileSystem.Lookup(c, h, name, out)
}

func (r rootOnly) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if r.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return r.RawFileSystem.GetAttr(c, in, out)
}

func (r rootOnly) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if r.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return r.RawFileSystem.Statx(c, in, out)
}

func (r rootOnly) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if r.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return r.RawFileSystem.Access(c, in)
}

func (r rootOnly) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return r.RawFileSystem.Open(c, in, out)
}

func (r rootOnly) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return r.RawFileSystem.OpenDir(c, in, out)
}

func (r rootOnly) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if r.denied(h) {
		return nil, fuse.EACCES
	}
	return r.RawFileSystem.Readlink(c, h)
}

func (r rootOnly) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if r.denied(h) {
		return fuse.EACCES
	}
	return r.RawFileSystem.StatFs(c, h, out)
}

func (r rootOnly) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if r.denied(h) {
		return 0, fuse.EACCES
	}
	return r.RawFileSystem.GetXAttr(c, h, attr, dest)
}

func (r rootOnly) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if r.denied(h) {
		return 0, fuse.EACCES
	}
	return r.RawFileSystem.ListXAttr(c, h, dest)
}
