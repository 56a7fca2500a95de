package pool

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool/internal/sftpwire"
)

// DirEntry is one name of a listing with its attributes. Extended
// attributes are skipped.
type DirEntry = sftpwire.DirEntry

// ReadDirLimit lists the directory rel in the server's order, but stops
// reading after limit entries (limit <= 0: no limit) and then reports
// truncated. pkg/sftp's ReadDir keeps reading until the server says EOF,
// so a hostile server could make it hold any number of entries; this
// reads the listing one NAME packet (at most 1 MiB) at a time on the
// connection's own SFTP session and closes the handle at the limit.
func (p *Pool) ReadDirLimit(ctx context.Context, peer peers.Peer, rel string, limit int) ([]DirEntry, bool, error) {
	var out []DirEntry
	trunc, err := p.ReadDirEach(ctx, peer, rel, limit, func(es []DirEntry) bool {
		out = append(out, es...)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return out, trunc, nil
}

// ErrListingBudget is ReadDirEach's error when each refused entries.
var ErrListingBudget = errors.New("listing budget spent")

// ReadDirEach is ReadDirLimit that hands every reply's entries to each as
// they arrive instead of collecting them (each must not keep the slice,
// only copies of its entries), so a listing can be shown while it is
// read, and stops with ErrListingBudget when each returns false: a
// background fetch pays for what it reads, not for a worst case reserved
// up front. each runs on the connection's goroutine: it must not block
// for long, or the connection's deadline ends the listing.
func (p *Pool) ReadDirEach(ctx context.Context, peer peers.Peer, rel string, limit int, each func([]DirEntry) bool) (truncated bool, err error) {
	type result struct {
		truncated bool
		refused   bool
	}
	// A long listing that keeps arriving outlives the hard deadline.
	var listed atomic.Int64
	ctx = withProgress(ctx, &listed)
	r, err := do(ctx, p, peer, "readdir", rel, func(c *conn) (result, error) {
		d, err := c.dataChan()
		if err != nil {
			return result{}, err
		}
		trunc, err := d.ReadDirEach(ctx, RemotePath(peer, rel), limit, func(es []DirEntry) bool {
			listed.Add(int64(len(es)))
			return each(es)
		})
		if errors.Is(err, sftpwire.ErrRefused) {
			// Not the connection's fault: it must not be closed for it.
			return result{refused: true}, nil
		}
		return result{trunc, false}, err
	})
	if err == nil && r.refused {
		return false, ErrListingBudget
	}
	return r.truncated, err
}
