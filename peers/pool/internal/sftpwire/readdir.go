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

// ReadDir lists the directory path in the server's order: OPENDIR, then
// READDIR until EOF, then CLOSE (not waited for). It stops after limit
// entries (limit <= 0: no limit) and reports truncated, stops with ctx's
// error when ctx ends, and asks take (nil: no budget) for every reply's
// entries as they arrive, stopping with ErrRefused when take says no.
// Unlike pkg/sftp's ReadDir it never holds more than limit entries and
// readdirAhead-1 replies (each at most MaxPacket) beyond them.
func (c *Chan) ReadDir(ctx context.Context, path string, limit int, take func(n int) bool) ([]DirEntry, bool, error) {
	h, err := c.openHandle(fxpOpendir, sftpString(path))
	if err != nil {
		return nil, false, err
	}
	// The listing is complete either way.
	defer c.CloseNoWait(h)
	hs := sftpString(h)
	// READDIRs are pipelined, readdirAhead in flight, so a listing of a
	// few hundred entries (OpenSSH sends 100 a reply) costs one round
	// trip after the OPENDIR instead of one per reply. Nobody waits for
	// the replies past the end: the read loop answers them.
	var out []DirEntry
	var queue []*request
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if limit > 0 && len(out) >= limit {
			return out[:limit], true, nil
		}
		for len(queue) < readdirAhead {
			r := &request{want: fxpName}
			queue = append(queue, r)
			if err := c.send(fxpReaddir, r, hs); err != nil {
				return nil, false, err
			}
		}
		req := queue[0]
		<-req.done
		queue = queue[1:]
		if req.err != nil {
			return nil, false, req.err
		}
		if !req.named {
			err := req.result()
			if errors.Is(err, io.EOF) {
				return out, false, nil
			}
			if err == nil {
				err = errors.New("sftp readdir: OK status instead of names")
			}
			return nil, false, err
		}
		if take != nil && !take(len(req.names)) {
			return nil, false, ErrRefused
		}
		out = append(out, req.names...)
	}
}
