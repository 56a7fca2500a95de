package pool

import (
	"context"
	"errors"

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
	return p.ReadDirBudget(ctx, peer, rel, limit, nil)
}

// ErrListingBudget is ReadDirBudget's error when take refused entries.
var ErrListingBudget = errors.New("listing budget spent")

// ReadDirBudget is ReadDirLimit that also asks take for every reply's
// entries as they arrive (take == nil: no budget) and stops with
// ErrListingBudget when take says no: a background fetch pays for what it
// reads, not for a worst case reserved up front.
func (p *Pool) ReadDirBudget(ctx context.Context, peer peers.Peer, rel string, limit int, take func(n int) bool) ([]DirEntry, bool, error) {
	type result struct {
		entries   []DirEntry
		truncated bool
		refused   bool
	}
	r, err := do(ctx, p, peer, "readdir", rel, func(c *conn) (result, error) {
		d, err := c.dataChan()
		if err != nil {
			return result{}, err
		}
		es, trunc, err := d.ReadDir(ctx, RemotePath(peer, rel), limit, take)
		if errors.Is(err, sftpwire.ErrRefused) {
			// Not the connection's fault: it must not be closed for it.
			return result{refused: true}, nil
		}
		return result{es, trunc, false}, err
	})
	if err == nil && r.refused {
		return nil, false, ErrListingBudget
	}
	return r.entries, r.truncated, err
}
