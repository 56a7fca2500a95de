package download_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/pkg/sftp"

	"github.com/dsftp/dsftp/cmd/internal/download"
)

// sftpSource serves a download.Source from one *sftp.Client, so the engine
// is tested against a real OpenSSH server and a hostile one without the
// peer pool. Every metadata call has a deadline, and cancelling a read's
// context closes its remote handle, so a dead server fails a test instead
// of hanging it.
type sftpSource struct {
	// Client is the SFTP session.
	Client *sftp.Client
	// Root is the remote directory shown as "/" ("" or "." for the
	// server's start directory).
	Root string
}

var _ download.Source = (*sftpSource)(nil)

// sftpCallTimeout bounds each Stat, ReadDir and Open.
const sftpCallTimeout = 15 * time.Second

// remote maps a share path ("/a/b") to the server's path, never above Root.
func (s *sftpSource) remote(p string) string {
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

// call runs fn with the deadline; on timeout or cancellation it returns at
// once and leaves fn to finish (or fail when the session is closed).
func call[T any](ctx context.Context, what string, fn func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, sftpCallTimeout)
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
		return zero, fmt.Errorf("%s: server did not answer within %v: %w", what, sftpCallTimeout, ctx.Err())
	}
}

// Stat implements download.Source.
func (s *sftpSource) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	return call(ctx, "stat", func() (fs.FileInfo, error) { return s.Client.Stat(s.remote(p)) })
}

// ReadDir implements download.Source as PoolSource does: symlinks to files
// are resolved, links to directories stay links.
func (s *sftpSource) ReadDir(ctx context.Context, p string) ([]fs.FileInfo, error) {
	return call(ctx, "list", func() ([]fs.FileInfo, error) {
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

// OpenAt implements download.Source. The returned reader is the
// *sftp.File itself (wrapped only to close on cancellation), so io.Copy
// uses its concurrent WriteTo: many read requests in flight.
func (s *sftpSource) OpenAt(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	f, err := call(ctx, "open", func() (*sftp.File, error) { return s.Client.Open(s.remote(p)) })
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
