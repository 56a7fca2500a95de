package share

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pkg/sftp"
)

// errTooManyHandles is returned when a connection has MaxHandlesPerConn files
// and directories open. It maps to SSH_FX_FAILURE with this text.
var errTooManyHandles = errors.New("too many open handles on this connection; close some files")

// errPanic is what the client sees for a request whose handler panicked.
var errPanic = errors.New("internal server error")

// fsHandlers serves one SFTP session read-only from an os.Root. It is
// sftp.Handlers' FileGet, FilePut, FileCmd and FileList at once; every
// write-like method answers SSH_FX_PERMISSION_DENIED without touching the
// disk. Every path goes through the view (hidden files, ignore rules,
// excluded mounts, symlinks) and every opened file through the secret
// guard.
type fsHandlers struct {
	root    *os.Root
	view    *view
	secrets *secretGuard

	handles    *atomic.Int64 // open file and directory handles of the connection
	maxHandles int64         // cap on handles; <= 0 means no cap
	log        *slog.Logger
	onPanic    func() // ends the session after a recovered panic

	// testHookRead, if set, runs at the start of every ReadAt with the
	// root-relative path; tests use it to make a handler panic.
	testHookRead func(rel string)

	// noatime is cleared after the kernel refuses O_NOATIME once (we are
	// neither the owner nor privileged), so later opens skip the retry.
	noatime atomic.Bool
}

var (
	_ sftp.FileReader           = (*fsHandlers)(nil)
	_ sftp.FileWriter           = (*fsHandlers)(nil)
	_ sftp.FileCmder            = (*fsHandlers)(nil)
	_ sftp.PosixRenameFileCmder = (*fsHandlers)(nil)
	_ sftp.StatVFSFileCmder     = (*fsHandlers)(nil)
	_ sftp.FileLister           = (*fsHandlers)(nil)
	_ sftp.LstatFileLister      = (*fsHandlers)(nil)
	_ sftp.ReadlinkFileLister   = (*fsHandlers)(nil)
	_ sftp.RealPathFileLister   = (*fsHandlers)(nil)
)

func newFSHandlers(v *view, secrets *secretGuard, handles *atomic.Int64, maxHandles int, log *slog.Logger, onPanic func()) *fsHandlers {
	h := &fsHandlers{root: v.root, view: v, secrets: secrets, handles: handles, maxHandles: int64(maxHandles), log: log, onPanic: onPanic}
	h.noatime.Store(true)
	return h
}

// handlers returns the sftp.Handlers for a request server.
func (h *fsHandlers) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// recoverTo turns a panic in a handler into errPanic for the client, logs
// it, and ends the session (its state may be inconsistent). The process and
// the other sessions go on. It also rewrites errors so that a client never
// sees a path of the host (see clientError) and escapes read as
// "Permission denied".
func (h *fsHandlers) recoverTo(err *error, op, p string) {
	if v := recover(); v != nil {
		h.log.Error("sftp handler panicked; closing session", "op", op, "path", p, "panic", fmt.Sprint(v))
		*err = errPanic
		if h.onPanic != nil {
			go h.onPanic()
		}
		return
	}
	*err = forClient(*err, op, p)
}

// forClient rewrites the error of an operation on the client path p: an
// error naming a path names p instead, so host paths never leave.
func forClient(err error, op, p string) error {
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

// clientPathOf is the cleaned client path for p, "" if p is invalid.
func clientPathOf(p string) string {
	rel, err := clientToRel(p)
	if err != nil {
		return ""
	}
	return clientPath(rel)
}

// acquire reserves one handle slot.
func (h *fsHandlers) acquire() error {
	if n := h.handles.Add(1); h.maxHandles > 0 && n > h.maxHandles {
		h.handles.Add(-1)
		return errTooManyHandles
	}
	return nil
}

func (h *fsHandlers) release() { h.handles.Add(-1) }

// openNoAtime opens the resolved path rel read-only through the root,
// with O_NOATIME when the kernel allows it (we own the file or are
// privileged) so that serving a file changes nothing on disk, not even
// its access time. rel has no symlinks left (the view resolved them), so
// O_NOFOLLOW turns one swapped in since into an error. O_NONBLOCK keeps a
// FIFO swapped in from blocking the open.
func (h *fsHandlers) openNoAtime(rel string, extra int) (*os.File, error) {
	flags := os.O_RDONLY | oNonblock | oNoFollow | extra
	if oNoatime != 0 && h.noatime.Load() {
		f, err := h.root.OpenFile(rel, flags|oNoatime, 0)
		if !errors.Is(err, syscall.EPERM) {
			return f, err
		}
		// EPERM here means "not the owner": O_NOATIME is the only flag
		// that can cause it for a read-only open. Retry without.
		h.noatime.Store(false)
	}
	return h.root.OpenFile(rel, flags, 0)
}

// openResolved opens what the view resolved and checks that it is still
// the file that was looked up (same device and inode), so nothing
// swapped in between lookup and open is served.
func (h *fsHandlers) openResolved(r resolved, extra int) (*os.File, error) {
	f, err := h.openNoAtime(r.real, extra)
	if err != nil {
		return nil, clientError("open", r.req, err)
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(fi, r.fi) {
		err = errChanged
	}
	if err != nil {
		f.Close()
		return nil, clientError("open", r.req, err)
	}
	return f, nil
}

// errChanged is why an open fails when the path changed under it.
var errChanged = errors.New("file changed while being opened; try again")

// isEscape reports os.Root's refusal of a path that leaves the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// Fileread opens a regular file for reading. Its type is checked before
// it is opened: opening a FIFO would release a writer blocked on it.
func (h *fsHandlers) Fileread(r *sftp.Request) (_ io.ReaderAt, err error) {
	defer h.recoverTo(&err, "open", r.Filepath)
	res, err := h.view.lookup("open", r.Filepath, true)
	if err != nil {
		return nil, err
	}
	if !res.fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: clientPath(res.req), Err: errNotRegular}
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, err := h.openResolved(res, 0)
	if err == nil {
		err = h.secrets.check(f, res.fi, res.real)
		if err != nil {
			f.Close()
		}
		if errors.Is(err, errSecret) {
			err = &os.PathError{Op: "open", Path: clientPath(res.req), Err: syscall.ENOENT}
		}
	}
	if err != nil {
		h.release()
		return nil, err
	}
	// Blocking reads again: O_NONBLOCK was only for the open.
	if err := setBlocking(f); err != nil {
		f.Close()
		h.release()
		return nil, err
	}
	return &readFile{f: f, h: h, rel: res.req}, nil
}

// errNotRegular refuses FIFOs, sockets and device nodes inside the share:
// reading them could block forever or expose a device.
var errNotRegular = errors.New("not a regular file")

// readFile is an open file handle of one client.
type readFile struct {
	f    *os.File
	h    *fsHandlers
	rel  string // path in the share, for logs and errors
	once sync.Once
}

func (rf *readFile) ReadAt(p []byte, off int64) (n int, err error) {
	defer rf.h.recoverTo(&err, "read", clientPath(rf.rel))
	if rf.h.testHookRead != nil {
		rf.h.testHookRead(rf.rel)
	}
	return rf.f.ReadAt(p, off)
}

func (rf *readFile) Close() error {
	var err error
	rf.once.Do(func() {
		err = rf.f.Close()
		rf.h.release()
	})
	return err
}

// Filewrite refuses every open for writing, creating, truncating or
// appending.
func (h *fsHandlers) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	h.log.Debug("refused write", "op", "open-write", "path", r.Filepath)
	return nil, sftp.ErrSSHFxPermissionDenied
}

// Filecmd refuses setstat, rename, rmdir, mkdir, link, symlink and remove.
func (h *fsHandlers) Filecmd(r *sftp.Request) error {
	h.log.Debug("refused write", "op", strings.ToLower(r.Method), "path", r.Filepath)
	return sftp.ErrSSHFxPermissionDenied
}

// PosixRename refuses posix-rename@openssh.com.
func (h *fsHandlers) PosixRename(r *sftp.Request) error {
	h.log.Debug("refused write", "op", "posix-rename", "path", r.Filepath)
	return sftp.ErrSSHFxPermissionDenied
}

// StatVFS answers statvfs@openssh.com (df through sshfs) for the file
// system holding the path, marked read-only.
func (h *fsHandlers) StatVFS(r *sftp.Request) (_ *sftp.StatVFS, err error) {
	defer h.recoverTo(&err, "statvfs", r.Filepath)
	res, err := h.view.lookup("statvfs", r.Filepath, true)
	if err != nil {
		return nil, err
	}
	f, err := h.openResolved(res, oPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := statVFS(f)
	if err != nil {
		return nil, &os.PathError{Op: "statvfs", Path: clientPath(res.req), Err: err}
	}
	return st, nil
}

// The statvfs@openssh.com flag bits (OpenSSH's PROTOCOL file): the share
// says read-only and nosuid whatever the disk is.
const (
	fxeStatvfsRdonly = 0x1
	fxeStatvfsNosuid = 0x2
)

// Filelist serves opendir ("List"), stat ("Stat") and, for clients that
// do not use ReadlinkFileLister, nothing else.
func (h *fsHandlers) Filelist(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recoverTo(&err, strings.ToLower(r.Method), r.Filepath)
	switch r.Method {
	case "List":
		return h.list(r.Filepath)
	case "Stat":
		res, err := h.view.lookup("stat", r.Filepath, true)
		if err != nil {
			return nil, err
		}
		return listerAt{res.fi}, nil
	default:
		return nil, sftp.ErrSSHFxOpUnsupported
	}
}

// Lstat stats a path without following a final symlink. A symlink that
// points outside the share is shown as a symlink; following it fails.
func (h *fsHandlers) Lstat(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recoverTo(&err, "lstat", r.Filepath)
	res, err := h.view.lookup("lstat", r.Filepath, false)
	if err != nil {
		return nil, err
	}
	return listerAt{res.fi}, nil
}

// Readlink shows a symlink's target in the client's view of the share
// (see linkTargetForClient). A link that leaves the share or leads to a
// path that is not shared is not there at all (see view.withheld).
func (h *fsHandlers) Readlink(p string) (_ string, err error) {
	defer h.recoverTo(&err, "readlink", p)
	res, err := h.view.lookup("readlink", p, false)
	if err != nil {
		return "", err
	}
	if res.fi.Mode()&os.ModeSymlink == 0 {
		return "", &os.PathError{Op: "readlink", Path: clientPath(res.req), Err: syscall.EINVAL}
	}
	target, err := h.root.Readlink(res.real)
	if err != nil {
		return "", clientError("readlink", res.req, err)
	}
	shown, ok := linkTargetForClient(h.view.rootReal, res.req, target)
	if !ok || !h.view.targetShown(res.real, target) {
		// Changed since the lookup: it is not there.
		return "", &os.PathError{Op: "readlink", Path: clientPath(res.req), Err: syscall.ENOENT}
	}
	return shown, nil
}

// RealPath canonicalises a path in the client's view: the share is "/",
// so realpath of "." is "/". The path need not exist (clients ask before
// uploads), but a path that is not shared is not there.
func (h *fsHandlers) RealPath(p string) (string, error) {
	rel, err := clientToRel(p)
	if err != nil {
		return "", err
	}
	if _, err := h.view.find(rel, false); errors.Is(err, errAbsent) {
		return "", &os.PathError{Op: "realpath", Path: clientPath(rel), Err: syscall.ENOENT}
	}
	return clientPath(rel), nil
}

// list opens a directory handle. Entries are read from the disk in
// batches as the client asks for them (see dirLister), so a handle holds
// one open directory and one batch, whatever the directory's size.
func (h *fsHandlers) list(p string) (sftp.ListerAt, error) {
	res, err := h.view.lookup("opendir", p, true)
	if err != nil {
		return nil, err
	}
	if !res.fi.IsDir() {
		return nil, &os.PathError{Op: "opendir", Path: clientPath(res.req), Err: syscall.ENOTDIR}
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	d, err := h.openResolved(res, oDirectory)
	if err != nil {
		h.release()
		return nil, err
	}
	return &dirLister{d: d, res: res, h: h}, nil
}

// listerAt serves a single stat result.
type listerAt []os.FileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// dirLister is an open directory handle. Each ListAt reads the next batch
// from the directory, leaves out what the view does not show (by name,
// then what is withheld: keys, secrets, links out) and stats the rest (lstat: symlinks show as symlinks, as ls -l on the sharing
// machine would). pkg/sftp asks for consecutive offsets; a request to
// start over reopens the directory. Close frees the handle slot.
type dirLister struct {
	h   *fsHandlers
	res resolved

	mu   sync.Mutex
	d    *os.File
	next int64 // offset of the next entry to hand out
	done bool
	once sync.Once
}

func (dl *dirLister) ListAt(out []os.FileInfo, off int64) (n int, err error) {
	defer dl.h.recoverTo(&err, "readdir", clientPath(dl.res.req))
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if off != dl.next {
		if off != 0 {
			return 0, &os.PathError{Op: "readdir", Path: clientPath(dl.res.req), Err: syscall.EINVAL}
		}
		if err := dl.rewind(); err != nil {
			return 0, err
		}
	}
	for n < len(out) && !dl.done {
		es, err := dl.d.ReadDir(len(out) - n)
		if errors.Is(err, io.EOF) || err == nil && len(es) == 0 {
			dl.done = true
			break
		}
		if err != nil {
			return n, err
		}
		for _, e := range es {
			if dl.hidden(e) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed since it was read
			}
			if why := dl.h.view.withheld(join(dl.res.real, e.Name()), fi); why != "" {
				dl.h.secrets.log.leftOut(join(dl.res.req, e.Name()), why)
				continue
			}
			out[n] = fi
			n++
		}
	}
	dl.next += int64(n)
	if dl.done && n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// hidden reports an entry the view does not show, by the name the client
// used and by the real one.
func (dl *dirLister) hidden(e os.DirEntry) bool {
	v, isDir := dl.h.view, e.IsDir()
	return v.childAbsent(dl.res.real, e.Name(), isDir) ||
		dl.res.req != dl.res.real && v.childAbsent(dl.res.req, e.Name(), isDir)
}

func (dl *dirLister) rewind() error {
	d, err := dl.h.openResolved(dl.res, oDirectory)
	if err != nil {
		return err
	}
	dl.d.Close()
	dl.d, dl.next, dl.done = d, 0, false
	return nil
}

func (dl *dirLister) Close() error {
	dl.once.Do(func() {
		dl.mu.Lock()
		dl.d.Close()
		dl.mu.Unlock()
		dl.h.release()
	})
	return nil
}
