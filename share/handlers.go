package share

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// errTooManyHandles is returned when a connection has MaxHandlesPerConn files
// and directories open. It maps to SSH_FX_FAILURE with this text.
var errTooManyHandles = errors.New("too many open handles on this connection; close some files")

// errPanic is what the client sees for a request whose handler panicked.
var errPanic = errors.New("internal server error")

// fsHandlers serves one SFTP session read-only from an os.Root. It is
// sftp.Handlers' FileGet, FilePut, FileCmd and FileList at once; every
// write-like method answers SSH_FX_PERMISSION_DENIED without touching the
// disk.
type fsHandlers struct {
	root     *os.Root
	rootReal string // real absolute path of the root, for absolute symlinks

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

func newFSHandlers(root *os.Root, rootReal string, handles *atomic.Int64, maxHandles int, log *slog.Logger, onPanic func()) *fsHandlers {
	h := &fsHandlers{root: root, rootReal: rootReal, handles: handles, maxHandles: int64(maxHandles), log: log, onPanic: onPanic}
	h.noatime.Store(true)
	return h
}

// handlers returns the sftp.Handlers for a request server.
func (h *fsHandlers) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// recoverTo turns a panic in a handler into errPanic for the client, logs
// it, and ends the session (its state may be inconsistent). The process and
// the other sessions go on. It also maps escapes to permission denied.
func (h *fsHandlers) recoverTo(err *error, op, p string) {
	*err = refuseEscapes(*err)
	if v := recover(); v != nil {
		h.log.Error("sftp handler panicked; closing session", "op", op, "path", p, "panic", fmt.Sprint(v))
		*err = errPanic
		if h.onPanic != nil {
			go h.onPanic()
		}
	}
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

// openNoAtime opens rel read-only through the root, with O_NOATIME when the
// kernel allows it (we own the file or are privileged) so that serving a
// file changes nothing on disk, not even its access time. O_NONBLOCK keeps a
// FIFO in the share from blocking the open; callers refuse non-regular files.
func (h *fsHandlers) openNoAtime(rel string, extra int) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | extra
	if h.noatime.Load() {
		f, err := h.root.OpenFile(rel, flags|syscall.O_NOATIME, 0)
		if !errors.Is(err, syscall.EPERM) {
			return f, err
		}
		// EPERM here means "not the owner": O_NOATIME is the only flag
		// that can cause it for a read-only open. Retry without.
	}
	return h.root.OpenFile(rel, flags, 0)
}

// refuseEscapes reports os.Root's "path escapes from parent" (a symlink or
// ".." leading out of the share) as SSH_FX_PERMISSION_DENIED rather than a
// generic failure, so clients say "Permission denied". os.Root has no
// exported sentinel for it, hence the text match; anything else passes.
func refuseEscapes(err error) error {
	if isEscape(err) {
		return fmt.Errorf("%w: %v", sftp.ErrSSHFxPermissionDenied, err)
	}
	return err
}

// isEscape reports os.Root's refusal of a path that leaves the root.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// followAbsLinks handles what os.Root refuses although it stays inside:
// a final symlink with an absolute target that lies in the share (as
// `ln -s "$PWD/file" link` makes). It returns the root-relative path to use
// instead, or false. Every hop is read through the root, and the result is
// opened through the root again, so confinement still holds.
func (h *fsHandlers) followAbsLinks(rel string) (string, bool) {
	moved := false
	for range 8 {
		fi, err := h.root.Lstat(rel)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return rel, moved && err == nil
		}
		target, err := h.root.Readlink(rel)
		if err != nil || !filepath.IsAbs(target) {
			return rel, moved
		}
		inside, ok := absInside(h.rootReal, target)
		if !ok {
			return "", false
		}
		rel, moved = inside, true
	}
	return "", false // a loop of absolute links
}

// Fileread opens a regular file for reading.
func (h *fsHandlers) Fileread(r *sftp.Request) (_ io.ReaderAt, err error) {
	defer h.recoverTo(&err, "open", r.Filepath)
	rel, err := clientToRel(r.Filepath)
	if err != nil {
		return nil, err
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, err := h.openNoAtime(rel, 0)
	if isEscape(err) {
		if alt, ok := h.followAbsLinks(rel); ok {
			f, err = h.openNoAtime(alt, 0)
		}
	}
	if err != nil {
		h.release()
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &os.PathError{Op: "open", Path: clientPath(rel), Err: errNotRegular}
	}
	if err != nil {
		f.Close()
		h.release()
		return nil, err
	}
	// Blocking reads again: O_NONBLOCK was only for the open.
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		h.release()
		return nil, err
	}
	return &readFile{f: f, h: h, rel: rel}, nil
}

// errNotRegular refuses FIFOs, sockets and device nodes inside the share:
// reading them could block forever or expose a device.
var errNotRegular = errors.New("not a regular file")

// readFile is an open file handle of one client.
type readFile struct {
	f    *os.File
	h    *fsHandlers
	rel  string // path in the share, for logs
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
	rel, err := clientToRel(r.Filepath)
	if err != nil {
		return nil, err
	}
	f, err := h.openNoAtime(rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "statvfs", Path: r.Filepath, Err: err}
	}
	return &sftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  uint64(st.Frsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Fsid:    uint64(uint32(st.Fsid.Val[0])) | uint64(uint32(st.Fsid.Val[1]))<<32,
		Flag:    unix.ST_RDONLY | unix.ST_NOSUID, // the share is read-only whatever the disk is
		Namemax: uint64(st.Namelen),
	}, nil
}

// Filelist serves opendir ("List"), stat ("Stat") and, for clients that
// do not use ReadlinkFileLister, nothing else.
func (h *fsHandlers) Filelist(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recoverTo(&err, strings.ToLower(r.Method), r.Filepath)
	rel, err := clientToRel(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		return h.list(rel)
	case "Stat":
		fi, err := h.root.Stat(rel)
		if isEscape(err) {
			if alt, ok := h.followAbsLinks(rel); ok {
				fi, err = h.root.Stat(alt)
			}
		}
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	default:
		return nil, sftp.ErrSSHFxOpUnsupported
	}
}

// Lstat stats a path without following a final symlink. A symlink that
// points outside the share is shown as a symlink; following it fails.
func (h *fsHandlers) Lstat(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.recoverTo(&err, "lstat", r.Filepath)
	rel, err := clientToRel(r.Filepath)
	if err != nil {
		return nil, err
	}
	fi, err := h.root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}

// Readlink shows a symlink's target in the client's view of the share; see
// linkTargetForClient for what is refused.
func (h *fsHandlers) Readlink(p string) (_ string, err error) {
	defer h.recoverTo(&err, "readlink", p)
	rel, err := clientToRel(p)
	if err != nil {
		return "", err
	}
	target, err := h.root.Readlink(rel)
	if err != nil {
		return "", err
	}
	shown, ok := linkTargetForClient(h.rootReal, rel, target)
	if !ok {
		return "", &os.PathError{Op: "readlink", Path: p, Err: errLinkOutside}
	}
	return shown, nil
}

// errLinkOutside is why readlink of a symlink leaving the share fails.
var errLinkOutside = fmt.Errorf("symlink points outside the share: %w", sftp.ErrSSHFxPermissionDenied)

// RealPath canonicalises a path in the client's view: the share is "/",
// so realpath of "." is "/". It does not touch the disk.
func (h *fsHandlers) RealPath(p string) (string, error) {
	rel, err := clientToRel(p)
	if err != nil {
		return "", err
	}
	return clientPath(rel), nil
}

// list reads a whole directory, sorted by name, with lstat information
// (symlinks show as symlinks, as ls -l on the sharing machine would).
func (h *fsHandlers) list(rel string) (sftp.ListerAt, error) {
	if err := h.acquire(); err != nil {
		return nil, err
	}
	d, err := h.openNoAtime(rel, unix.O_DIRECTORY)
	if isEscape(err) {
		if alt, ok := h.followAbsLinks(rel); ok {
			d, err = h.openNoAtime(alt, unix.O_DIRECTORY)
		}
	}
	if err != nil {
		h.release()
		return nil, err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		h.release()
		return nil, err
	}
	infos := make([]os.FileInfo, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		infos = append(infos, fi)
	}
	slices.SortFunc(infos, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return &dirLister{infos: infos, h: h}, nil
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

// dirLister is an open directory handle; Close frees its handle slot.
type dirLister struct {
	infos []os.FileInfo
	h     *fsHandlers
	once  sync.Once
}

func (d *dirLister) ListAt(out []os.FileInfo, off int64) (int, error) {
	return listerAt(d.infos).ListAt(out, off)
}

func (d *dirLister) Close() error {
	d.once.Do(d.h.release)
	return nil
}
