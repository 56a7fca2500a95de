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

	"github.com/dsftp/dsftp/share/policy"
	"github.com/pkg/sftp"
)

// errTooManyHandles is returned when a connection has MaxHandlesPerConn files
// and directories open. It maps to SSH_FX_FAILURE with this text.
var errTooManyHandles = errors.New("too many open handles on this connection; close some files")

// errPanic is what the client sees for a request whose handler panicked.
var errPanic = errors.New("internal server error")

// fsHandlers serves one SFTP session read-only through the share's
// policy.View. It is sftp.Handlers' FileGet, FilePut, FileCmd and
// FileList at once; every write-like method answers
// SSH_FX_PERMISSION_DENIED without touching the disk. Every path and every
// open goes through the view (hidden files, ignore rules, excluded
// mounts, symlinks, keys and secrets).
type fsHandlers struct {
	view *policy.View

	handles    *atomic.Int64 // open file and directory handles of the connection
	maxHandles int64         // cap on handles; <= 0 means no cap
	log        *slog.Logger
	onPanic    func() // ends the session after a recovered panic

	// testHookRead, if set, runs at the start of every ReadAt with the
	// client path; tests use it to make a handler panic.
	testHookRead func(p string)
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

func newFSHandlers(v *policy.View, handles *atomic.Int64, maxHandles int, log *slog.Logger, onPanic func()) *fsHandlers {
	return &fsHandlers{view: v, handles: handles, maxHandles: int64(maxHandles), log: log, onPanic: onPanic}
}

// handlers returns the sftp.Handlers for a request server.
func (h *fsHandlers) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// recoverTo turns a panic in a handler into errPanic for the client, logs
// it, and ends the session (its state may be inconsistent). The process and
// the other sessions go on. It also rewrites errors so that a client never
// sees a path of the host (see policy.ClientError).
func (h *fsHandlers) recoverTo(err *error, op, p string) {
	if v := recover(); v != nil {
		h.log.Error("sftp handler panicked; closing session", "op", op, "path", p, "panic", fmt.Sprint(v))
		*err = errPanic
		if h.onPanic != nil {
			go h.onPanic()
		}
		return
	}
	*err = policy.ClientError(*err, op, p)
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

// Fileread opens a regular file for reading. Its type is checked before
// a handle is taken: a FIFO is refused whatever the handles.
func (h *fsHandlers) Fileread(r *sftp.Request) (_ io.ReaderAt, err error) {
	defer h.recoverTo(&err, "open", r.Filepath)
	e, err := h.view.Lookup("open", r.Filepath, true)
	if err != nil {
		return nil, err
	}
	if !e.Info().Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: e.Path(), Err: policy.ErrNotRegular}
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, err := h.view.Open(e)
	if err != nil {
		h.release()
		return nil, err
	}
	return &readFile{f: f, h: h, path: e.Path()}, nil
}

// readFile is an open file handle of one client.
type readFile struct {
	f    *os.File
	h    *fsHandlers
	path string // as the client sees it, for logs and errors
	once sync.Once
}

func (rf *readFile) ReadAt(p []byte, off int64) (n int, err error) {
	defer rf.h.recoverTo(&err, "read", rf.path)
	if rf.h.testHookRead != nil {
		rf.h.testHookRead(rf.path)
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
	e, err := h.view.Lookup("statvfs", r.Filepath, true)
	if err != nil {
		return nil, err
	}
	f, err := h.view.OpenPath(e)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := statVFS(f)
	if err != nil {
		return nil, &os.PathError{Op: "statvfs", Path: e.Path(), Err: err}
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
		e, err := h.view.Lookup("stat", r.Filepath, true)
		if err != nil {
			return nil, err
		}
		return listerAt{e.Info()}, nil
	default:
		return nil, sftp.ErrSSHFxOpUnsupported
	}
}

// Lstat stats a path without following a final symlink. A symlink that
// points outside the share is shown as a symlink; following it fails.
func (h *fsHandlers) Lstat(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recoverTo(&err, "lstat", r.Filepath)
	e, err := h.view.Lookup("lstat", r.Filepath, false)
	if err != nil {
		return nil, err
	}
	return listerAt{e.Info()}, nil
}

// Readlink shows a symlink's target in the client's view of the share
// (see policy.View.Readlink). A link that leaves the share or leads to a
// path that is not shared is not there at all.
func (h *fsHandlers) Readlink(p string) (_ string, err error) {
	defer h.recoverTo(&err, "readlink", p)
	e, err := h.view.Lookup("readlink", p, false)
	if err != nil {
		return "", err
	}
	return h.view.Readlink(e)
}

// RealPath canonicalises a path in the client's view (see
// policy.View.RealPath).
func (h *fsHandlers) RealPath(p string) (string, error) { return h.view.RealPath(p) }

// list opens a directory handle. Entries are read from the disk in
// batches as the client asks for them (see dirLister), so a handle holds
// one open directory and one batch, whatever the directory's size.
func (h *fsHandlers) list(p string) (sftp.ListerAt, error) {
	e, err := h.view.Lookup("opendir", p, true)
	if err != nil {
		return nil, err
	}
	if !e.Info().IsDir() {
		return nil, &os.PathError{Op: "opendir", Path: e.Path(), Err: syscall.ENOTDIR}
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	d, err := h.view.OpenDir(e)
	if err != nil {
		h.release()
		return nil, err
	}
	return &dirLister{d: d, e: e, h: h}, nil
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

// dirLister is an open directory handle: it hands out what
// policy.Dir.Next shows. pkg/sftp asks for consecutive offsets; a request
// to start over reopens the directory. Close frees the handle slot.
type dirLister struct {
	h *fsHandlers
	e policy.Entry

	mu   sync.Mutex
	d    *policy.Dir
	next int64 // offset of the next entry to hand out
	once sync.Once
}

func (dl *dirLister) ListAt(out []os.FileInfo, off int64) (n int, err error) {
	defer dl.h.recoverTo(&err, "readdir", dl.e.Path())
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if off != dl.next {
		if off != 0 {
			return 0, &os.PathError{Op: "readdir", Path: dl.e.Path(), Err: syscall.EINVAL}
		}
		if err := dl.rewind(); err != nil {
			return 0, err
		}
	}
	n, err = dl.d.Next(out)
	if err == nil || errors.Is(err, io.EOF) {
		dl.next += int64(n)
	}
	return n, err
}

func (dl *dirLister) rewind() error {
	d, err := dl.h.view.OpenDir(dl.e)
	if err != nil {
		return err
	}
	dl.d.Close()
	dl.d, dl.next = d, 0
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
