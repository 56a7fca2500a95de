package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a caller may want to tell apart.
var (
	// ErrExists: the destination exists and Options.Force is not set.
	ErrExists = errors.New("already exists (use -f to overwrite)")
	// ErrStalled: no data arrived for Options.StallTimeout.
	ErrStalled = errors.New("peer stopped sending data")
	// ErrUnsafeName: a remote name cannot be used as a local file name.
	ErrUnsafeName = errors.New("unsafe file name")
)

// Options control a download.
type Options struct {
	// Recursive allows a directory as the remote path (get -r).
	Recursive bool
	// Force overwrites existing destination files. Without it an existing
	// file is left alone: skipped when it already has the remote size and
	// mtime (a finished earlier download), an error otherwise.
	Force bool
	// SHA256 hashes every downloaded file; FileResult.SHA256 holds the
	// digest.
	SHA256 bool
	// Origin names the peer (e.g. its ID); it is recorded with a .part file
	// so a resume never continues a file that came from somewhere else.
	Origin string
	// RootName is the local name used when the remote path is the share's
	// root "/" (e.g. the peer's display name).
	RootName string
	// StallTimeout aborts a file when no data arrives for this long; 0
	// means 30 seconds. The .part file is kept for a later resume.
	StallTimeout time.Duration
	// Progress receives progress events; nil discards them.
	Progress Progress
}

// FileResult describes one file of a download.
type FileResult struct {
	// Remote is the path on the peer.
	Remote string
	// Local is the path written, relative to the destination directory.
	Local string
	// Size is the file's size.
	Size int64
	// Resumed is how many bytes were reused from an earlier .part file.
	Resumed int64
	// Fetched is how many bytes were read from the peer in this run.
	Fetched int64
	// Skipped is set when the file was already complete locally.
	Skipped bool
	// SHA256 is the hex digest of the whole file when Options.SHA256.
	SHA256 string
}

// Result sums up a download.
type Result struct {
	// Dir is the local destination directory all Local paths are under.
	Dir string
	// Files are the files handled, in download order.
	Files []FileResult
	// Fetched is the number of bytes read from the peer in this run.
	Fetched int64
	// Bytes is the total size of the files.
	Bytes int64
}

// Summary is the closing line of a download that took d, the same for
// `dsftp get` and the shell's get: files, total size, bytes fetched (exact,
// for scripts) and the rate.
func (r Result) Summary(d time.Duration) string {
	files := fmt.Sprintf("%d files", len(r.Files))
	if len(r.Files) == 1 {
		files = "1 file"
	}
	return fmt.Sprintf("%s, %s: fetched %d bytes in %.1fs (%s/s)", files, Size(r.Bytes),
		r.Fetched, d.Seconds(), Size(int64(float64(r.Fetched)/max(d.Seconds(), 0.001))))
}

// Get downloads remote (a file, or with Options.Recursive a directory) from
// src to dest. When dest is an existing directory or ends in a separator,
// the download goes inside it under the remote base name; otherwise dest is
// the new file's name. Nothing is ever written outside that directory:
// remote names that are not a single plain path component are refused, and
// all local writes go through an os.Root.
func Get(ctx context.Context, src Source, remote, dest string, opts Options) (*Result, error) {
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 30 * time.Second
	}
	remote = path.Clean("/" + remote)
	st, err := src.Stat(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", remote, Friendly(err))
	}
	name := path.Base(remote)
	if remote == "/" {
		name = opts.RootName
	}
	dir, leaf, err := localTarget(dest, name)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open destination directory: %w", err)
	}
	defer root.Close()
	res := &Result{Dir: dir}

	var files []item
	switch {
	case st.IsDir():
		if !opts.Recursive {
			return nil, fmt.Errorf("%s is a directory: use get -r to download it with its contents", remote)
		}
		var dirs []string
		files, dirs, err = plan(ctx, src, remote, leaf, opts.Progress)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			if err := root.MkdirAll(filepath.FromSlash(d), 0o755); err != nil {
				return nil, fmt.Errorf("create directory: %w", err)
			}
		}
	case st.Mode().IsRegular():
		files = []item{{remote: remote, local: leaf, info: st}}
	default:
		return nil, fmt.Errorf("%s is not a regular file or directory", remote)
	}

	var total int64
	for _, f := range files {
		total += f.info.Size()
	}
	res.Bytes = total
	opts.Progress.Begin(len(files), total)
	defer opts.Progress.End()
	for _, f := range files {
		fr, err := fetch(ctx, src, root, f, opts)
		res.Fetched += fr.Fetched
		opts.Progress.FileDone(fr, err)
		if err != nil {
			return res, fmt.Errorf("%s: %w", f.remote, err)
		}
		res.Files = append(res.Files, fr)
	}
	return res, nil
}

// item is one file to fetch.
type item struct {
	remote string      // path on the peer
	local  string      // slash path relative to the destination directory
	info   fs.FileInfo // remote stat
}

// localTarget splits dest into the directory to confine writes to and the
// name to create in it.
func localTarget(dest, name string) (dir, leaf string, err error) {
	if dest == "" {
		dest = "."
	}
	if strings.HasSuffix(dest, string(filepath.Separator)) || isDir(dest) {
		if err := SafeName(name); err != nil {
			return "", "", err
		}
		return dest, name, nil
	}
	return filepath.Dir(dest), filepath.Base(dest), nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// SafeName reports whether a remote name can be used as one local path
// component: not empty, ".", "..", and without separators or NUL; on
// Windows also a name Windows can create (see windowsName).
func SafeName(name string) error { return safeNameOn(name, runtime.GOOS == "windows") }

func safeNameOn(name string, windows bool) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || !filepath.IsLocal(name) {
		return fmt.Errorf("%w %q", ErrUnsafeName, name)
	}
	if windows {
		if why := windowsName(name); why != "" {
			return fmt.Errorf("%w %q: %s", ErrUnsafeName, name, why)
		}
	}
	return nil
}

// windowsName says why Windows cannot create a file of this name, or "".
// A peer on Linux or macOS may have such names; they are skipped rather
// than written under another name.
func windowsName(name string) string {
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || strings.ContainsRune(`<>:"|?*`, r) }); i >= 0 {
		return fmt.Sprintf("Windows does not allow %q in file names", name[i])
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return "Windows drops a trailing dot or space"
	}
	base, _, _ := strings.Cut(name, ".")
	switch b := strings.ToUpper(strings.TrimRight(base, " ")); {
	case b == "CON" || b == "PRN" || b == "AUX" || b == "NUL",
		len(b) == 4 && (strings.HasPrefix(b, "COM") || strings.HasPrefix(b, "LPT")) && b[3] >= '0' && b[3] <= '9':
		return "a reserved device name on Windows"
	}
	return ""
}

// plan lists a remote tree depth first in name order. Entries with unsafe
// names, and anything but files and directories, are skipped with a note.
func plan(ctx context.Context, src Source, remote, local string, p Progress) (files []item, dirs []string, err error) {
	if strings.Count(local, "/") >= maxDepth {
		return nil, nil, fmt.Errorf("%s: directories nested more than %d deep; download a subdirectory instead", remote, maxDepth)
	}
	dirs = append(dirs, local)
	list, err := src.ReadDir(ctx, remote)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", remote, Friendly(err))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
	for _, fi := range list {
		if err := SafeName(fi.Name()); err != nil {
			p.Note(fmt.Sprintf("skipped %s: %v", remote, err))
			continue
		}
		r, l := path.Join(remote, fi.Name()), path.Join(local, fi.Name())
		switch {
		case fi.IsDir():
			f, d, err := plan(ctx, src, r, l, p)
			if err != nil {
				return nil, nil, err
			}
			files, dirs = append(files, f...), append(dirs, d...)
		case fi.Mode().IsRegular():
			files = append(files, item{remote: r, local: l, info: fi})
		default:
			p.Note(fmt.Sprintf("skipped %s: not a regular file", r))
		}
	}
	return files, dirs, nil
}

// maxDepth bounds get -r; sources do not follow links to directories, so
// only a genuinely deep tree reaches it.
const maxDepth = 128

// partMeta is stored next to a .part file: what it is a prefix of.
type partMeta struct {
	Origin string `json:"origin"`
	Remote string `json:"remote"`
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime"` // unix seconds, as SFTP reports it
}

// PartSuffix and MetaSuffix name the files of an unfinished download.
const (
	PartSuffix = ".part"
	MetaSuffix = ".part.meta"
)

// fetch downloads one file into root, resuming a matching .part file.
func fetch(ctx context.Context, src Source, root *os.Root, it item, opts Options) (FileResult, error) {
	size, mtime := it.info.Size(), it.info.ModTime()
	fr := FileResult{Remote: it.remote, Local: it.local, Size: size}
	local := filepath.FromSlash(it.local)
	part, metaName := local+PartSuffix, local+MetaSuffix

	if done, err := existing(root, it, opts, &fr); done || err != nil {
		return fr, err
	}
	off, err := resumeAt(root, it, opts)
	if err != nil {
		return fr, err
	}
	f, err := root.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fr, fmt.Errorf("create %s: %w", part, err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return fr, err
	}
	var h hash.Hash
	if opts.SHA256 {
		h = sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, off)); err != nil {
			return fr, fmt.Errorf("hash %s: %w", part, err)
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fr, err
	}
	fr.Resumed = off
	opts.Progress.FileStart(it.local, size, off)
	if off > 0 {
		slog.Info("resuming a download", "file", it.local, "at", off, "size", size)
	}

	n, err := copyFrom(ctx, src, it.remote, off, f, h, opts)
	fr.Fetched = n
	if err != nil {
		return fr, err
	}
	// The file must not have changed under us: same size and mtime now,
	// and exactly that many bytes received.
	st, err := src.Stat(ctx, it.remote)
	if err != nil {
		return fr, fmt.Errorf("check after download: %w", Friendly(err))
	}
	if st.Size() != size || st.ModTime().Unix() != mtime.Unix() {
		f.Close()
		_ = root.Remove(part)
		_ = root.Remove(metaName)
		return fr, fmt.Errorf("remote file changed during the download; run get again for the new version")
	}
	if got := off + n; got != size {
		return fr, fmt.Errorf("size check failed: received %d bytes, the peer says %d; run get again", got, size)
	}
	if err := finish(root, f, part, local, mtime); err != nil {
		return fr, err
	}
	_ = root.Remove(metaName)
	if h != nil {
		fr.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return fr, nil
}

// existing handles a local file already at the item's place: done when it
// is the same file (skipped, hashed if asked), an error when it is in the
// way and not to be overwritten.
func existing(root *os.Root, it item, opts Options, fr *FileResult) (done bool, err error) {
	size, mtime := it.info.Size(), it.info.ModTime()
	local := filepath.FromSlash(it.local)
	fi, err := root.Lstat(local)
	if err != nil {
		return false, nil
	}
	switch {
	case fi.IsDir():
		return false, fmt.Errorf("%s is a local directory", it.local)
	case !opts.Force && fi.Mode().IsRegular() && fi.Size() == size && fi.ModTime().Unix() == mtime.Unix():
		fr.Skipped = true
		opts.Progress.FileStart(it.local, size, size)
		if opts.SHA256 {
			d, err := hashFile(root, local, size, nil)
			if err != nil {
				return false, err
			}
			fr.SHA256 = d
		}
		return true, nil
	case !opts.Force:
		return false, fmt.Errorf("%s %w", filepath.Join(root.Name(), local), ErrExists)
	}
	return false, nil
}

// resumeAt returns where to continue the item's .part file (0 to start
// over) and records what the .part file holds.
func resumeAt(root *os.Root, it item, opts Options) (int64, error) {
	size := it.info.Size()
	local := filepath.FromSlash(it.local)
	part, metaName := local+PartSuffix, local+MetaSuffix
	want := partMeta{Origin: opts.Origin, Remote: it.remote, Size: size, MTime: it.info.ModTime().Unix()}
	var off int64
	if pfi, err := root.Lstat(part); err == nil {
		var have partMeta
		b, err := root.ReadFile(metaName)
		switch {
		case err != nil && !opts.Force:
			// Not left by an interrupted get: somebody's own file.
			return 0, fmt.Errorf("%s exists but is not an unfinished download of dsftp: move it away, or use -f to replace it", filepath.Join(root.Name(), part))
		case err == nil && pfi.Mode().IsRegular() && json.Unmarshal(b, &have) == nil && have == want && pfi.Size() <= size:
			off = pfi.Size()
		case err == nil:
			opts.Progress.Note(fmt.Sprintf("%s: the remote file changed since the interrupted download; starting over", it.local))
		}
		if !pfi.Mode().IsRegular() {
			if err := root.Remove(part); err != nil {
				return 0, fmt.Errorf("replace %s: %w", part, err)
			}
		}
	}
	mb, _ := json.Marshal(want)
	if err := writeFile(root, metaName, mb); err != nil {
		return 0, fmt.Errorf("record download state: %w", err)
	}
	return off, nil
}

// finish makes the complete .part file f the downloaded file local, with
// the remote modification time.
func finish(root *os.Root, f *os.File, part, local string, mtime time.Time) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", part, err)
	}
	_ = root.Chtimes(part, mtime, mtime)
	if err := root.Rename(part, local); err != nil {
		return fmt.Errorf("rename %s: %w", part, err)
	}
	return nil
}

func writeFile(root *os.Root, name string, b []byte) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hashFile(root *os.Root, name string, size int64, h hash.Hash) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if h == nil {
		h = sha256.New()
	}
	if _, err := io.Copy(h, io.LimitReader(f, size)); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFrom streams the remote file from off into f. A stall watchdog and
// ctx cancel the transfer; once cancelled, no further byte reaches f, so the
// .part file stays a clean prefix even if a read is still stuck on the
// network.
func copyFrom(ctx context.Context, src Source, remote string, off int64, f *os.File, h hash.Hash, opts Options) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc, err := src.OpenAt(ctx, remote, off)
	if err != nil {
		return 0, fmt.Errorf("open: %w", Friendly(err))
	}
	s := &sink{f: f, h: h, p: opts.Progress}
	s.last.Store(time.Now().UnixNano())

	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, rc)
		done <- err
	}()
	tick := time.NewTicker(min(opts.StallTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			rc.Close()
			if err != nil {
				return s.n, fmt.Errorf("read: %w", Friendly(err))
			}
			return s.n, nil
		case <-tick.C:
			if time.Since(time.Unix(0, s.last.Load())) > opts.StallTimeout {
				cancel(fmt.Errorf("%w for %v", ErrStalled, opts.StallTimeout))
			}
			continue
		case <-ctx.Done():
		}
		s.stop()
		go rc.Close()
		// Give the copy a moment to notice; a read stuck on a dead
		// connection is left behind (it can no longer write).
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return s.n, context.Cause(ctx)
	}
}

// sink writes received data to the .part file, the hash and the progress.
type sink struct {
	mu      sync.Mutex
	f       *os.File
	h       hash.Hash
	p       Progress
	n       int64
	stopped bool
	last    atomic.Int64 // unix nanos of the last data
}

var errStopped = errors.New("download stopped")

func (s *sink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return 0, errStopped
	}
	n, err := s.f.Write(b)
	if s.h != nil {
		s.h.Write(b[:n])
	}
	s.n += int64(n)
	s.last.Store(time.Now().UnixNano())
	s.p.Add(int64(n))
	return n, err
}

func (s *sink) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// Friendly rewrites common SFTP and network errors into words a user can
// act on; others pass through.
func Friendly(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such file or directory")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("permission denied")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed),
		strings.Contains(err.Error(), "connection lost"), strings.Contains(err.Error(), "connection reset"),
		strings.Contains(err.Error(), "broken pipe"):
		return fmt.Errorf("connection to the peer was lost (run get again to resume): %w", err)
	}
	return err
}
