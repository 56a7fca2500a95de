package policy

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular refuses FIFOs, sockets and device nodes inside the share:
// reading them could block forever or expose a device.
var ErrNotRegular = errors.New("not a regular file")

// errChanged is why an open fails when the path changed under it.
var errChanged = errors.New("file changed while being opened; try again")

// Open opens the regular file e for reading. The file opened must be the
// one looked up (nothing swapped in since), and it is checked for a
// private key or a dsftp secret before a byte of it is read: a listing's
// verdict may be older than the file. A withheld file fails with ENOENT,
// as at the look-up. Its type is checked before it is opened: opening a
// FIFO would release a writer blocked on it.
func (v *View) Open(e Entry) (*os.File, error) {
	if !e.fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: e.Path(), Err: ErrNotRegular}
	}
	f, fi, err := v.openEntry(e, 0)
	if err != nil {
		return nil, err
	}
	if v.secrets != nil {
		// The opened file's size, not the look-up's: what was appended
		// since is read too.
		if err := v.secrets.check(f, fi, e.real); err != nil {
			f.Close()
			if errors.Is(err, errSecret) {
				return nil, &os.PathError{Op: "open", Path: e.Path(), Err: syscall.ENOENT}
			}
			return nil, err
		}
	}
	// Blocking reads again: O_NONBLOCK was only for the open.
	if err := setBlocking(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenPath opens e to ask about its file system (fstatfs), without
// reading it where the platform allows (O_PATH).
func (v *View) OpenPath(e Entry) (*os.File, error) {
	f, _, err := v.openEntry(e, oPath)
	return f, err
}

// openEntry opens what the view resolved and checks that it is still the
// file that was looked up (same device and inode), so nothing swapped in
// between look-up and open is served. It returns the opened file's
// Stat.
func (v *View) openEntry(e Entry, extra int) (*os.File, fs.FileInfo, error) {
	f, err := v.openNoAtime(e.real, extra)
	if err != nil {
		return nil, nil, clientError("open", e.req, err)
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(fi, e.fi) {
		err = errChanged
	}
	if err != nil {
		f.Close()
		return nil, nil, clientError("open", e.req, err)
	}
	return f, fi, nil
}

// openNoAtime opens the resolved path rel read-only through the root,
// with O_NOATIME when the kernel allows it (we own the file or are
// privileged) so that serving a file changes nothing on disk, not even
// its access time. rel has no symlinks left (the view resolved them), so
// O_NOFOLLOW turns one swapped in since into an error. O_NONBLOCK keeps a
// FIFO swapped in from blocking the open.
func (v *View) openNoAtime(rel string, extra int) (*os.File, error) {
	flags := os.O_RDONLY | oNonblock | oNoFollow | extra
	if oNoatime != 0 && v.noatime.Load() {
		f, err := v.root.OpenFile(rel, flags|oNoatime, 0)
		if !errors.Is(err, syscall.EPERM) {
			return f, err
		}
		// EPERM here means "not the owner": O_NOATIME is the only flag
		// that can cause it for a read-only open. Retry without.
		v.noatime.Store(false)
	}
	return v.root.OpenFile(rel, flags, 0)
}

// Dir is an open directory of the view: Next hands out its entries as
// the client may see them, read from the disk in batches as asked for,
// so a Dir holds one open directory whatever the directory's size.
type Dir struct {
	v    *View
	e    Entry
	f    *os.File
	done bool
}

// OpenDir opens the directory e for listing.
func (v *View) OpenDir(e Entry) (*Dir, error) {
	if !e.fi.IsDir() {
		return nil, &os.PathError{Op: "opendir", Path: e.Path(), Err: syscall.ENOTDIR}
	}
	f, _, err := v.openEntry(e, oDirectory)
	if err != nil {
		return nil, err
	}
	return &Dir{v: v, e: e, f: f}, nil
}

// Next fills out with the next entries the client may see, as lstat
// describes them (symlinks show as symlinks, as ls -l on the sharing
// machine would). It leaves out what the view does not show, by name,
// then what is withheld (keys, secrets, links out), and names each such
// file once in the log. It returns io.EOF with the last entries, fewer
// than len(out).
func (d *Dir) Next(out []fs.FileInfo) (n int, err error) {
	for n < len(out) && !d.done {
		es, err := d.f.ReadDir(len(out) - n)
		if errors.Is(err, io.EOF) || err == nil && len(es) == 0 {
			d.done = true
			break
		}
		if err != nil {
			return n, err
		}
		for _, de := range es {
			if d.hidden(de) {
				continue
			}
			fi, err := de.Info()
			if err != nil {
				continue // removed since it was read
			}
			if why := d.v.withheld(join(d.e.real, de.Name()), fi); why != "" {
				d.v.log.leftOut(join(d.e.req, de.Name()), why)
				continue
			}
			out[n] = fi
			n++
		}
	}
	if d.done && n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// hidden reports an entry the view does not show, by the name the client
// used and by the real one.
func (d *Dir) hidden(de fs.DirEntry) bool {
	v, isDir := d.v, de.IsDir()
	return v.childAbsent(d.e.real, de.Name(), isDir) ||
		d.e.req != d.e.real && v.childAbsent(d.e.req, de.Name(), isDir)
}

// Close closes the directory.
func (d *Dir) Close() error { return d.f.Close() }
