package download

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/pkg/sftp"
)

// SFTPSource serves a Source from one *sftp.Client. Every metadata call has
// a deadline, and cancelling a read's context closes its remote handle, so a
// dead peer fails a call instead of hanging it.
type SFTPSource struct {
	// Client is the SFTP session.
	Client *sftp.Client
	// Root is the remote directory shown as "/" ("" or "." for the
	// server's start directory).
	Root string
	// Timeout bounds each Stat and ReadDir; 0 means 15 seconds.
	Timeout time.Duration
}

var _ Source = (*SFTPSource)(nil)

// remote maps a share path ("/a/b") to the server's path, never above Root.
func (s *SFTPSource) remote(p string) string {
	clean := path.Clean("/" + p) // "/../x" cleans to "/x": no way above the root
	root := s.Root
	if root == "" {
		root = "."
	}
	if clean == "/" {
		return root
	}
	return path.Join(root, clean[1:])
}

func (s *SFTPSource) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 15 * time.Second
}

// call runs fn with the deadline; on timeout or cancellation it returns at
// once and leaves fn to finish (or fail when the session is closed).
func call[T any](ctx context.Context, d time.Duration, what string, fn func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := fn()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		if ctx.Err() == context.DeadlineExceeded {
			return zero, fmt.Errorf("%s: peer did not answer within %v: %w", what, d, ErrTimeout)
		}
		return zero, ctx.Err()
	}
}

// Stat implements Source.
func (s *SFTPSource) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	return call(ctx, s.timeout(), "stat", func() (fs.FileInfo, error) { return s.Client.Stat(s.remote(p)) })
}

// ReadDir implements Source. Symlinks to files are resolved, so a link to
// a file downloads as that file; links to directories stay links (get -r
// skips them), so a link loop cannot make a download endless.
func (s *SFTPSource) ReadDir(ctx context.Context, p string) ([]fs.FileInfo, error) {
	return call(ctx, s.timeout(), "list", func() ([]fs.FileInfo, error) {
		list, err := s.Client.ReadDir(s.remote(p))
		if err != nil {
			return nil, err
		}
		for i, fi := range list {
			if fi.Mode()&fs.ModeSymlink != 0 {
				if t, err := s.Client.Stat(path.Join(s.remote(p), fi.Name())); err == nil && t.Mode().IsRegular() {
					list[i] = renamed{t, fi.Name()}
				}
			}
		}
		return list, nil
	})
}

// renamed reports a followed symlink under the link's own name.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// OpenAt implements Source. The returned reader is the *sftp.File itself
// (wrapped only to close on cancellation), so io.Copy uses its concurrent
// WriteTo: many read requests in flight.
func (s *SFTPSource) OpenAt(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	f, err := call(ctx, s.timeout(), "open", func() (*sftp.File, error) { return s.Client.Open(s.remote(p)) })
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	return &sftpReader{File: f, stop: stop}, nil
}

type sftpReader struct {
	*sftp.File
	stop func() bool
}

// WriteTo keeps the concurrent read path of *sftp.File visible to io.Copy.
func (r *sftpReader) WriteTo(w io.Writer) (int64, error) { return r.File.WriteTo(w) }

func (r *sftpReader) Close() error {
	if r.stop() {
		return r.File.Close()
	}
	return nil
}
