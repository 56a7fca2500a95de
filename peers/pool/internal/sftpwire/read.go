package sftpwire

import (
	"errors"
	"io"
)

// ErrClosedShort is ReadAtThenClose's error when the server answered a
// READ short: the handle was closed before the rest could be asked for.
var ErrClosedShort = errors.New("short read of a handle already closed")

// Open opens path for reading and returns the handle.
func (c *Chan) Open(path string) (string, error) {
	return c.openHandle(fxpOpen, sftpString(path), []byte{0, 0, 0, fxfRead, 0, 0, 0, 0}) // pflags, attrs (flags 0)
}

// openHandle sends OPEN or OPENDIR and waits for the handle.
func (c *Chan) openHandle(typ byte, body ...[]byte) (string, error) {
	req := &request{want: fxpHandle}
	if err := c.send(typ, req, body...); err != nil {
		return "", err
	}
	<-req.done
	if req.handle != "" {
		return req.handle, nil
	}
	if err := req.result(); err != nil {
		return "", err
	}
	return "", errors.New("sftp open: OK status instead of a handle")
}

// CloseHandle closes a handle and waits for the answer.
func (c *Chan) CloseHandle(h string) error {
	req := &request{want: fxpStatus}
	if err := c.send(fxpClose, req, sftpString(h)); err != nil {
		return err
	}
	<-req.done
	return req.result()
}

// CloseNoWait sends CLOSE for h; the read loop takes the answer, nobody
// waits for it. SFTP servers handle one session's requests in order, so a
// later OPEN on the session sees the handle closed.
func (c *Chan) CloseNoWait(h string) {
	_ = c.send(fxpClose, &request{want: fxpStatus}, sftpString(h))
}

// ReadAt fills b from off with READs of at most piece bytes, all in
// flight at once; a short answer (the server's own limit) is followed up
// for the rest. It returns the contiguous prefix read and io.EOF at the
// end of the file. Once it returns, nothing writes into b any more.
func (c *Chan) ReadAt(h string, b []byte, off int64, piece int) (int, error) {
	return c.readAt(h, b, off, piece, false)
}

// ReadAtThenClose is ReadAt that sends the handle's CLOSE in the same
// write as the READs (servers answer one session's requests in order, so
// the READs are served first): one packet and one system call less per
// file, on both ends, and nobody waits for the CLOSE. A short answer then
// cannot be followed up: the prefix read comes back with ErrClosedShort.
func (c *Chan) ReadAtThenClose(h string, b []byte, off int64, piece int) (int, error) {
	return c.readAt(h, b, off, piece, true)
}

func (c *Chan) readAt(h string, b []byte, off int64, piece int, closeAfter bool) (int, error) {
	if piece <= 0 {
		return 0, errors.New("sftp read: piece size must be positive")
	}
	type part struct {
		hi  int
		req *request
	}
	hs := sftpString(h)
	var parts []part
	var batch []outPacket
	for lo := 0; lo < len(b); lo += piece {
		hi := min(lo+piece, len(b))
		req := &request{want: fxpData, buf: b[lo:hi]}
		batch = append(batch, outPacket{fxpRead, req, [][]byte{hs, readBody(off+int64(lo), hi-lo)}})
		parts = append(parts, part{hi, req})
	}
	if closeAfter {
		batch = append(batch, outPacket{fxpClose, &request{want: fxpStatus}, [][]byte{hs}})
	}
	if err := c.sendBatch(batch); err != nil {
		// Every request is answered or failed: wait until none can
		// still write into b.
		for _, p := range parts {
			<-p.req.done
		}
		return 0, err
	}
	n := 0
	var first error
	for i, p := range parts {
		<-p.req.done
		if first != nil {
			continue
		}
		lo := i * piece
		req := p.req
		for {
			if req.err != nil || req.status.code != fxOK || req.n == 0 {
				if req.err == nil && req.status.code == fxOK && req.n == 0 {
					first = io.EOF // empty DATA: treat as end of file
				} else {
					first = req.result()
				}
				break
			}
			lo += req.n
			n = lo
			if lo >= p.hi {
				break
			}
			if closeAfter {
				first = ErrClosedShort
				break
			}
			// The server answered less than asked (its own cap): ask
			// for the rest of this part.
			req = &request{want: fxpData, buf: b[lo:p.hi]}
			if err := c.send(fxpRead, req, hs, readBody(off+int64(lo), p.hi-lo)); err != nil {
				first = err
				break
			}
			<-req.done
		}
	}
	return n, first
}
