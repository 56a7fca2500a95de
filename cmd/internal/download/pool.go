package download

import (
	"context"
	"io"
	"io/fs"
	"path"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
)

// PoolSource serves a Source from the peer session pool, so downloads use
// the same connections, deadlines and host key checks as the mount, and
// its read-ahead pipeline (pool.Reader: 1 MiB chunks, several in flight,
// each fetched as parallel requests of the largest size the server takes).
type PoolSource struct {
	// Pool holds the sessions.
	Pool *pool.Pool
	// Peer returns the peer as currently known (addresses may change while
	// a shell is open); an error when it is gone.
	Peer func() (peers.Peer, error)
}

var _ Source = (*PoolSource)(nil)

// rel turns a share path into the pool's root-relative form.
func rel(p string) string { return path.Clean("/" + p)[1:] }

// Stat implements Source.
func (s *PoolSource) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	peer, err := s.Peer()
	if err != nil {
		return nil, err
	}
	return s.Pool.Stat(ctx, peer, rel(p))
}

// ReadDir implements Source. Symlinks to files are resolved, so a link to
// a file downloads as that file; links to directories stay links (get -r
// skips them), so a link loop cannot make a download endless.
func (s *PoolSource) ReadDir(ctx context.Context, p string) ([]fs.FileInfo, error) {
	peer, err := s.Peer()
	if err != nil {
		return nil, err
	}
	list, err := s.Pool.ReadDir(ctx, peer, rel(p))
	if err != nil {
		return nil, err
	}
	for i, fi := range list {
		if fi.Mode()&fs.ModeSymlink != 0 {
			if t, err := s.Pool.Stat(ctx, peer, path.Join(rel(p), fi.Name())); err == nil && t.Mode().IsRegular() {
				list[i] = renamed{t, fi.Name()}
			}
		}
	}
	return list, nil
}

// renamed reports a followed symlink under the link's own name.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// OpenAt implements Source with a pool.Reader.
func (s *PoolSource) OpenAt(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	peer, err := s.Peer()
	if err != nil {
		return nil, err
	}
	r, err := s.Pool.OpenReader(ctx, peer, rel(p), -1)
	if err != nil {
		return nil, err
	}
	return &poolReader{r: r, ctx: ctx, off: off}, nil
}

// poolReader reads sequentially from off under ctx. WriteTo hands the
// pipeline whole chunks, so read-ahead stays full.
type poolReader struct {
	r   *pool.Reader
	ctx context.Context
	off int64
}

func (p *poolReader) Read(b []byte) (int, error) {
	n, err := p.r.ReadAtContext(p.ctx, b, p.off)
	p.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

func (p *poolReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, pool.ChunkSize)
	var total int64
	for {
		n, err := p.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (p *poolReader) Close() error { return p.r.Close() }
