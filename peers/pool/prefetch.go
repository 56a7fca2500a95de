package pool

import (
	"context"
	"errors"
	"io"

	"github.com/dsftp/dsftp/peers"
)

// Fetch reads the first n bytes of rel for a prefetch into memory: the
// OPEN, the READs as soon as its handle arrives, and a CLOSE it does not
// wait for, all on the least busy of the peer's connections (so many
// fetches run in parallel across them). The data is shorter than n only at
// the end of the file; its buffer may be handed back with RecycleFetched
// once nothing reads it. It runs under the pool's deadlines, so a frozen
// peer fails it with ErrTimeout.
func (p *Pool) Fetch(ctx context.Context, peer peers.Peer, rel string, n int) ([]byte, error) {
	return do(ctx, p, peer, "prefetch", rel, func(c *conn) ([]byte, error) {
		d, err := c.dataChan()
		if err != nil {
			return nil, err
		}
		h, err := d.Open(RemotePath(peer, rel))
		if err != nil {
			return nil, err
		}
		// A buffer of its own: a fetch cut short at the deadline may
		// still be written into after do returned (and then nobody
		// recycles it).
		buf := getFetchBuf(n)
		k := 0
		if n > 0 {
			k, err = d.ReadAtThenClose(h, buf, 0, c.piece)
		} else {
			d.CloseNoWait(h)
		}
		p.bytesRead.Add(int64(k))
		if err == io.EOF || errors.Is(err, errClosedShort) {
			err = nil // short: the caller sees the file changed
		}
		return buf[:k], err
	})
}

// BytesRead is the file data received so far by Readers and Fetch, for
// statistics and tests.
func (p *Pool) BytesRead() int64 { return p.bytesRead.Load() }
