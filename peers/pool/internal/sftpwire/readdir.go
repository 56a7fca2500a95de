package sftpwire

import (
	"context"
	"errors"
	"io"
)

// ErrRefused is ReadDir's error when take refused a reply's entries.
var ErrRefused = errors.New("listing refused by take")

// readdirAhead is how many READDIRs a listing keeps in flight.
const readdirAhead = 4

// ReadDir lists the directory path in the server's order, collecting
// what ReadDirEach hands over. take (nil: no budget) is asked for every
// reply's entries as they arrive; ReadDir stops with ErrRefused when it
// says no.
func (c *Chan) ReadDir(ctx context.Context, path string, limit int, take func(n int) bool) ([]DirEntry, bool, error) {
	var out []DirEntry
	trunc, err := c.ReadDirEach(ctx, path, limit, func(es []DirEntry) bool {
		if take != nil && !take(len(es)) {
			return false
		}
		out = append(out, es...)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return out, trunc, nil
}

// ReadDirEach lists the directory path in the server's order: OPENDIR,
// then READDIR until EOF, then CLOSE (not waited for). It hands every
// reply's entries to each as the reply arrives (each must not keep the
// slice past its call, only the entries' values), so a caller can show
// the first names while the server still sends the rest. It stops after
// limit entries (limit <= 0: no limit) and reports truncated when the
// server had more, stops with ctx's error when ctx ends, and with
// ErrRefused when each returns false. It never holds more than
// readdirAhead replies (each at most MaxPacket) at once.
func (c *Chan) ReadDirEach(ctx context.Context, path string, limit int, each func([]DirEntry) bool) (truncated bool, err error) {
	h, err := c.openHandle(fxpOpendir, sftpString(path))
	if err != nil {
		return false, err
	}
	// The listing is complete either way.
	defer c.CloseNoWait(h)
	hs := sftpString(h)
	// READDIRs are pipelined, readdirAhead in flight, so a listing of a
	// few hundred entries (OpenSSH sends 100 a reply) costs one round
	// trip after the OPENDIR instead of one per reply. Nobody waits for
	// the replies past the end: the read loop answers them.
	var queue []*request
	got := 0
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		for len(queue) < readdirAhead {
			r := &request{want: fxpName}
			queue = append(queue, r)
			if err := c.send(fxpReaddir, r, hs); err != nil {
				return false, err
			}
		}
		req := queue[0]
		<-req.done
		queue = queue[1:]
		if req.err != nil {
			return false, req.err
		}
		if !req.named {
			err := req.result()
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			if err == nil {
				err = errors.New("sftp readdir: OK status instead of names")
			}
			return false, err
		}
		names := req.names
		if limit > 0 && got == limit {
			// One more reply with names proves the listing is longer
			// than the limit (a listing of exactly limit entries ends
			// with EOF instead).
			if len(names) > 0 {
				return true, nil
			}
			continue
		}
		if limit > 0 && got+len(names) > limit {
			names = names[:limit-got]
			truncated = true
		}
		if len(names) > 0 && !each(names) {
			return false, ErrRefused
		}
		got += len(names)
		if truncated {
			return true, nil
		}
	}
}
