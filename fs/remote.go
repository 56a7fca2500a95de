package fs

import (
	"context"
	"os"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/pkg/sftp"
)

// Remote is what the file system asks of the peers: exactly the calls of
// the SFTP session pool (peers/pool) it makes. Every call must end within
// the remote's own deadlines even when ctx has none (FUSE requests carry
// no deadline, so a frozen peer must not hang a reader), and its errors
// must map to errnos with pool.Errno. PoolRemote adapts a *pool.Pool;
// tests use an in-memory fake, so the file system's logic runs without a
// network, and without a kernel mount for the node-level tests.
type Remote interface {
	Lstat(ctx context.Context, peer peers.Peer, rel string) (os.FileInfo, error)
	ReadLink(ctx context.Context, peer peers.Peer, rel string) (string, error)
	StatVFS(ctx context.Context, peer peers.Peer, rel string) (*sftp.StatVFS, error)
	// ReadDirEach lists at most limit entries of rel (truncated when the
	// peer had more), handing every reply's entries to each as they
	// arrive (each keeps no slice, only copies of entries; it may be
	// called after ReadDirEach returned with a deadline's error) and
	// failing with pool.ErrListingBudget when each says no.
	ReadDirEach(ctx context.Context, peer peers.Peer, rel string, limit int, each func([]pool.DirEntry) bool) (bool, error)
	// Fetch reads the first n bytes of rel (fewer only at its end); the
	// caller may hand the buffer to pool.RecycleFetched.
	Fetch(ctx context.Context, peer peers.Peer, rel string, n int) ([]byte, error)
	// OpenFile opens rel for reading; size is its size as last seen, from
	// where the caller will read first (it has the bytes before).
	OpenFile(ctx context.Context, peer peers.Peer, rel string, size, from int64) (RemoteFile, error)
	// Forget closes the connections to a peer that left.
	Forget(id string)
	// Close fails every call still waiting on a peer (at unmount).
	Close() error
}

// RemoteFile is a file open on a peer, as *pool.Reader serves it.
type RemoteFile interface {
	// Size is the size reads stop at; Grow raises it for a file that
	// grew on the peer (a smaller size is ignored).
	Size() int64
	Grow(size int64)
	// ReadAtNoCopy returns the bytes at off (fewer at the end of the
	// file, with no error), valid until release is called, exactly once
	// and also after an error.
	ReadAtNoCopy(ctx context.Context, b []byte, off int64) (data [][]byte, release func(), err error)
	// ReadAtContext reads into b; io.EOF with fewer bytes at the end.
	ReadAtContext(ctx context.Context, b []byte, off int64) (int, error)
	Close() error
}

// PoolRemote serves Remote with p (nil for a nil p, so Options' check
// still sees no pool).
func PoolRemote(p *pool.Pool) Remote {
	if p == nil {
		return nil
	}
	return poolRemote{p}
}

// poolRemote is *pool.Pool with OpenFile: Go has no covariant results,
// so the pool's OpenReaderFrom (a *pool.Reader) needs this one wrapper.
type poolRemote struct{ *pool.Pool }

var (
	_ Remote     = poolRemote{}
	_ RemoteFile = (*pool.Reader)(nil)
)

func (p poolRemote) OpenFile(ctx context.Context, peer peers.Peer, rel string, size, from int64) (RemoteFile, error) {
	r, err := p.OpenReaderFrom(ctx, peer, rel, size, from)
	if err != nil {
		return nil, err // not a nil *pool.Reader in a non-nil interface
	}
	return r, nil
}
