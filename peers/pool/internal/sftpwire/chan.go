package sftpwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

var (
	// ErrLost wraps the error of a session that broke: every request on
	// it fails with it. It matches syscall.EIO.
	ErrLost = fmt.Errorf("connection lost: %w", syscall.EIO)
	// ErrStatus marks an error status from a healthy server (one that
	// is not EOF, no such file or permission denied).
	ErrStatus = errors.New("server refused")

	errNotExist   = os.ErrNotExist
	errPermission = os.ErrPermission
)

// Chan is one SFTP v3 session that carries OPEN, READ and CLOSE for
// reads and OPENDIR and READDIR for listings. Requests are pipelined:
// any number of goroutines may use it at once, and one goroutine reads
// the replies and hands each to its request.
type Chan struct {
	w     io.Writer
	r     *bufio.Reader
	close func() error

	wmu sync.Mutex // one write at a time on w

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]*request
	err     error // set when the session broke; fails every request
}

// request is one request in flight. want is the reply type that answers
// it besides STATUS.
type request struct {
	want   byte
	buf    []byte     // READ: where DATA goes
	n      int        // READ: bytes received
	handle string     // OPEN, OPENDIR
	names  []DirEntry // READDIR
	named  bool       // READDIR: a NAME reply came
	status status
	err    error
	done   chan struct{}
}

// result is the request's outcome when no wanted reply came.
func (r *request) result() error {
	if r.err != nil {
		return r.err
	}
	return r.status.err()
}

// Start begins an SFTP session on the streams of a subsystem or channel:
// it sends INIT, checks the VERSION reply and starts reading replies.
// closeFn ends the session (Close, or when the session breaks).
func Start(w io.Writer, r io.Reader, closeFn func() error) (*Chan, error) {
	c := &Chan{w: w, r: bufio.NewReaderSize(r, 4<<10), close: closeFn, pending: map[uint32]*request{}}
	// INIT, version 3; the VERSION reply carries no request id.
	if _, err := w.Write([]byte{0, 0, 0, 5, fxpInit, 0, 0, 0, version}); err != nil {
		closeFn()
		return nil, fmt.Errorf("sftp init: %w", err)
	}
	if _, err := readVersion(c.r); err != nil {
		closeFn()
		return nil, fmt.Errorf("sftp version: %w", err)
	}
	go c.readLoop()
	return c, nil
}

// Close ends the session; requests in flight fail with ErrLost.
func (c *Chan) Close() error { return c.close() }

// readLoop dispatches replies until the session fails.
func (c *Chan) readLoop() {
	cur, err := c.readReplies()
	c.fail(err, cur)
	c.close()
}

// fail marks the session broken with cause and fails every pending
// request, and cur (the one whose reply broke off, or nil).
func (c *Chan) fail(cause error, cur *request) {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrLost, cause)
	}
	pending := c.pending
	c.pending = map[uint32]*request{}
	c.mu.Unlock()
	if cur != nil {
		pending[0] = cur // ids start at 1
	}
	for _, r := range pending {
		r.err = c.err
		close(r.done)
	}
}

// readReplies reads replies and answers their requests until an error:
// the stream's end or a reply that cannot be framed. It returns the
// request whose reply it was reading then, if any: nobody else will
// answer it.
func (c *Chan) readReplies() (*request, error) {
	var body []byte
	for {
		h, err := readHeader(c.r)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		req := c.pending[h.id]
		delete(c.pending, h.id)
		c.mu.Unlock()
		if req == nil {
			return nil, fmt.Errorf("sftp reply to unknown request %d", h.id)
		}
		if h.typ == fxpData && req.want == fxpData {
			// The reason for this package: no buffer of our own.
			if req.n, err = readData(c.r, h.bodyLen(), req.buf); err != nil {
				return req, err
			}
			close(req.done)
			continue
		}
		if cap(body) < h.bodyLen() {
			body = make([]byte, h.bodyLen())
		}
		body = body[:h.bodyLen()]
		if _, err := io.ReadFull(c.r, body); err != nil {
			return req, err
		}
		if err := req.answer(h.typ, body); err != nil {
			return req, err
		}
		close(req.done)
	}
}

// answer records a reply (other than DATA for a READ) in req. A STATUS or
// HANDLE that cannot be parsed breaks the session (the error returned);
// anything else unexpected fails the request only.
func (req *request) answer(typ byte, body []byte) error {
	var err error
	switch {
	case typ == fxpStatus:
		if req.status, err = parseStatus(body); err != nil {
			return err
		}
		if req.status.code == fxOK && req.want == fxpData {
			req.err = errors.New("sftp: OK status for a read")
		}
	case typ == fxpHandle && req.want == fxpHandle:
		if req.handle, err = parseHandle(body); err != nil {
			return err
		}
	case typ == fxpName && req.want == fxpName:
		req.named = true
		req.names, req.err = parseNames(body, nil)
	default:
		req.err = fmt.Errorf("sftp: unexpected packet type %d", typ)
	}
	return nil
}

// send registers req and writes one packet: type, id, then body.
func (c *Chan) send(typ byte, req *request, body ...[]byte) error {
	return c.sendBatch([]outPacket{{typ, req, body}})
}

// outPacket is one request for sendBatch.
type outPacket struct {
	typ  byte
	req  *request
	body [][]byte
}

// sendBatch registers the requests and writes their packets with one
// write: one SSH packet and one syscall for a chunk's worth of READs
// instead of one each.
func (c *Chan) sendBatch(pkts []outPacket) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	size := 0
	ids := make([]uint32, len(pkts))
	for i, p := range pkts {
		p.req.done = make(chan struct{})
		c.nextID++
		ids[i] = c.nextID
		c.pending[c.nextID] = p.req
		size += 9
		for _, b := range p.body {
			size += len(b)
		}
	}
	c.mu.Unlock()
	buf := make([]byte, 0, size)
	for i, p := range pkts {
		l := 5
		for _, b := range p.body {
			l += len(b)
		}
		buf = appendHeader(buf, header{length: uint32(l), typ: p.typ, id: ids[i]})
		for _, b := range p.body {
			buf = append(buf, b...)
		}
	}
	c.wmu.Lock()
	_, err := c.w.Write(buf)
	c.wmu.Unlock()
	if err == nil {
		return nil
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrLost, err)
	}
	// Requests still pending never got out: fail them here. The read
	// loop already took (and answers) the others.
	var failed []*request
	for i, id := range ids {
		if _, still := c.pending[id]; still {
			delete(c.pending, id)
			failed = append(failed, pkts[i].req)
		}
	}
	err = c.err
	c.mu.Unlock()
	for _, r := range failed {
		r.err = err
		close(r.done)
	}
	if len(failed) > 0 {
		return err
	}
	// The read loop already answered them all: the caller waits as usual.
	return nil
}

// readBody is a READ's body after the handle: offset and length.
func readBody(off int64, n int) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(off))
	return binary.BigEndian.AppendUint32(b, uint32(n))
}
