// Package download copies files and directory trees from a peer's share to
// the local disk. It is the engine behind `dsftp get` and the shell's `get`:
// downloads go to NAME.part and are renamed when complete, an interrupted
// download resumes when the remote file is unchanged, local writes are
// confined to the destination directory, and progress is reported to a
// Progress (a bar on a terminal, plain lines elsewhere).
//
// The engine sees a peer only through Source, so it works over any SFTP
// session: the peer pool's read pipeline (PoolSource) in the product, a
// plain *sftp.Client in the tests.
package download

import (
	"context"
	"io"
	"io/fs"
)

// Source is one peer's read-only tree. Paths are slash-separated and
// absolute: "/" is the root of the peer's share.
type Source interface {
	// Stat returns information about path, following symlinks.
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// ReadDir lists the directory at path. The order does not matter.
	ReadDir(ctx context.Context, path string) ([]fs.FileInfo, error)
	// OpenAt returns a sequential reader of the file at path starting at
	// byte off. Closing it releases the remote handle. Cancelling ctx must
	// make a blocked Read return.
	OpenAt(ctx context.Context, path string, off int64) (io.ReadCloser, error)
}
