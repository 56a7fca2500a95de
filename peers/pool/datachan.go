package pool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// dataChan is a second SFTP session on a connection that carries only
// OPEN, READ and CLOSE for Readers, and OPENDIR and READDIR for bounded
// listings (ReadDirLimit). pkg/sftp allocates a fresh buffer
// for every reply and copies the data out again; here a DATA reply is read
// straight from the channel into the caller's buffer, which halves the
// client's CPU per byte on bulk reads. Metadata stays with pkg/sftp.
type dataChan struct {
	sess sftpPipe
	w    io.WriteCloser
	r    *bufio.Reader

	wmu sync.Mutex // one packet at a time on w

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]*dataReq
	err     error // set when the channel broke; fails every request
}

// SFTP v3 packet types and constants used here.
const (
	fxpInit    = 1
	fxpVersion = 2
	fxpOpen    = 3
	fxpClose   = 4
	fxpRead    = 5
	fxpStatus  = 101
	fxpHandle  = 102
	fxpData    = 103
	fxfRead    = 1
	fxOK       = 0
	fxEOF      = 1
	fxNoSuch   = 2
	fxPermDeny = 3
)

// dataReq is one request in flight.
type dataReq struct {
	buf    []byte      // READ: where DATA goes
	n      int         // READ: bytes received
	handle string      // OPEN, OPENDIR: the handle
	names  *[]DirEntry // READDIR: where entries go
	named  bool        // READDIR: a NAME reply came
	status uint32      // STATUS code
	msg    string
	err    error
	done   chan struct{}
}

func (r *dataReq) result() error {
	if r.err != nil {
		return r.err
	}
	switch r.status {
	case fxOK:
		return nil
	case fxEOF:
		return io.EOF
	case fxNoSuch:
		return os.ErrNotExist
	case fxPermDeny:
		return os.ErrPermission
	}
	return fmt.Errorf("sftp: %s (status %d): %w", r.msg, r.status, errServerStatus)
}

// errServerStatus marks an error status from a healthy server.
var errServerStatus = errors.New("server refused")

// openDataChan starts the session; track records incoming data for the
// deadline watchdog.
func openDataChan(lk link, track func(io.Reader) io.Reader) (*dataChan, error) {
	sess, err := lk.openSFTP()
	if err != nil {
		return nil, fmt.Errorf("open data session: %w", err)
	}
	w, rd := sess.w, sess.r
	d := &dataChan{sess: sess, w: w, r: bufio.NewReaderSize(track(rd), 4<<10), pending: map[uint32]*dataReq{}}
	// INIT, version 3; the VERSION reply carries no request ID.
	if _, err := w.Write([]byte{0, 0, 0, 5, fxpInit, 0, 0, 0, 3}); err != nil {
		sess.close()
		return nil, fmt.Errorf("sftp init: %w", err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
		sess.close()
		return nil, fmt.Errorf("sftp version: %w", err)
	}
	l := binary.BigEndian.Uint32(hdr[:4])
	if hdr[4] != fxpVersion || l < 5 || l > 1<<20 {
		sess.close()
		return nil, fmt.Errorf("sftp version: unexpected packet type %d", hdr[4])
	}
	if _, err := d.r.Discard(int(l) - 1); err != nil {
		sess.close()
		return nil, fmt.Errorf("sftp version: %w", err)
	}
	go d.readLoop()
	return d, nil
}

func (d *dataChan) close() { d.sess.close() }

// readLoop dispatches replies until the channel fails.
func (d *dataChan) readLoop() {
	err := d.readReplies()
	d.mu.Lock()
	if d.err == nil {
		d.err = fmt.Errorf("%w: %v", errConnLost, err)
	}
	pending := d.pending
	d.pending = map[uint32]*dataReq{}
	d.mu.Unlock()
	for _, r := range pending {
		r.err = d.err
		close(r.done)
	}
	d.sess.close()
}

func (d *dataChan) readReplies() error {
	var hdr [9]byte
	var small []byte
	for {
		if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
			return err
		}
		length := binary.BigEndian.Uint32(hdr[:4])
		typ := hdr[4]
		id := binary.BigEndian.Uint32(hdr[5:9])
		if length < 5 || length > 1<<20 {
			return fmt.Errorf("bad sftp packet length %d", length)
		}
		rest := int(length) - 5
		d.mu.Lock()
		req := d.pending[id]
		delete(d.pending, id)
		d.mu.Unlock()
		if req == nil {
			return fmt.Errorf("sftp reply to unknown request %d", id)
		}
		if typ == fxpData && len(req.buf) > 0 && rest >= 4 {
			var lb [4]byte
			if _, err := io.ReadFull(d.r, lb[:]); err != nil {
				return err
			}
			n := int(binary.BigEndian.Uint32(lb[:]))
			rest -= 4
			if n > rest {
				return fmt.Errorf("bad sftp data length %d", n)
			}
			k := min(n, len(req.buf))
			if _, err := io.ReadFull(d.r, req.buf[:k]); err != nil {
				return err
			}
			req.n = k
			if _, err := d.r.Discard(rest - k); err != nil {
				return err
			}
			close(req.done)
			continue
		}
		if cap(small) < rest {
			small = make([]byte, rest)
		}
		body := small[:rest]
		if _, err := io.ReadFull(d.r, body); err != nil {
			return err
		}
		switch typ {
		case fxpStatus:
			if len(body) < 4 {
				return errors.New("short sftp status")
			}
			req.status = binary.BigEndian.Uint32(body)
			if len(body) >= 8 {
				ml := binary.BigEndian.Uint32(body[4:])
				if int(ml) <= len(body)-8 {
					req.msg = string(body[8 : 8+ml])
				}
			}
			if req.status == fxOK && req.buf != nil {
				req.err = errors.New("sftp: OK status for a read")
			}
		case fxpHandle:
			if len(body) < 4 || int(binary.BigEndian.Uint32(body)) > len(body)-4 {
				return errors.New("bad sftp handle")
			}
			req.handle = string(body[4 : 4+binary.BigEndian.Uint32(body)])
		case fxpName:
			if req.names == nil {
				req.err = errors.New("sftp: unexpected names")
				break
			}
			req.named = true
			req.err = parseNames(body, req.names)
		case fxpData:
			// A DATA reply to a request without a buffer.
			req.err = errors.New("sftp: unexpected data")
		default:
			req.err = fmt.Errorf("sftp: unexpected packet type %d", typ)
		}
		close(req.done)
	}
}

// send registers req and writes one packet: type, id, then body.
func (d *dataChan) send(typ byte, req *dataReq, body ...[]byte) error {
	return d.sendBatch([]outPacket{{typ, req, body}})
}

// outPacket is one request for sendBatch.
type outPacket struct {
	typ  byte
	req  *dataReq
	body [][]byte
}

// sendBatch registers the requests and writes their packets with one
// channel write: one SSH packet and one syscall for a chunk's worth of
// READs instead of one each.
func (d *dataChan) sendBatch(pkts []outPacket) error {
	d.mu.Lock()
	if d.err != nil {
		err := d.err
		d.mu.Unlock()
		return err
	}
	size := 0
	ids := make([]uint32, len(pkts))
	for i, p := range pkts {
		p.req.done = make(chan struct{})
		d.nextID++
		ids[i] = d.nextID
		d.pending[d.nextID] = p.req
		size += 9
		for _, b := range p.body {
			size += len(b)
		}
	}
	d.mu.Unlock()
	buf := make([]byte, 0, size)
	for i, p := range pkts {
		l := 5
		for _, b := range p.body {
			l += len(b)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(l))
		buf = append(buf, p.typ)
		buf = binary.BigEndian.AppendUint32(buf, ids[i])
		for _, b := range p.body {
			buf = append(buf, b...)
		}
	}
	d.wmu.Lock()
	_, err := d.w.Write(buf)
	d.wmu.Unlock()
	if err != nil {
		d.mu.Lock()
		if d.err == nil {
			d.err = fmt.Errorf("%w: %v", errConnLost, err)
		}
		// Requests still pending never got out: fail them here. The
		// read loop already took (and answers) the others.
		var failed []*dataReq
		for i, id := range ids {
			if _, still := d.pending[id]; still {
				delete(d.pending, id)
				failed = append(failed, pkts[i].req)
			}
		}
		err := d.err
		d.mu.Unlock()
		for _, r := range failed {
			r.err = err
			close(r.done)
		}
		if len(failed) > 0 {
			return err
		}
		// The read loop already answered them all; fall through to wait.
	}
	return nil
}

func sftpString(s string) []byte {
	b := make([]byte, 4+len(s))
	binary.BigEndian.PutUint32(b, uint32(len(s)))
	copy(b[4:], s)
	return b
}

// open opens path for reading and returns the handle.
func (d *dataChan) open(path string) (string, error) {
	req := &dataReq{}
	// filename, pflags, attrs (flags 0)
	if err := d.send(fxpOpen, req, sftpString(path), []byte{0, 0, 0, fxfRead, 0, 0, 0, 0}); err != nil {
		return "", err
	}
	<-req.done
	if req.err != nil {
		return "", req.err
	}
	if req.handle == "" {
		if err := req.result(); err != nil {
			return "", err
		}
		return "", errors.New("sftp open: no handle")
	}
	return req.handle, nil
}

// closeHandle closes a handle and waits for the answer.
func (d *dataChan) closeHandle(h string) error {
	req := &dataReq{}
	if err := d.send(fxpClose, req, sftpString(h)); err != nil {
		return err
	}
	<-req.done
	return req.result()
}

// readAt fills b from off with requests of at most piece bytes, all in
// flight at once; a short answer (the server's own limit) is followed up
// for the rest. It returns the contiguous prefix read and io.EOF at the end
// of the file.
func (d *dataChan) readAt(h string, b []byte, off int64, piece int) (int, error) {
	return d.readAtClose(h, b, off, piece, false)
}

// errClosedShort: a read sent with its CLOSE came back short, and the
// handle was gone for the rest.
var errClosedShort = errors.New("short read of a handle already closed")

// readAtClose is readAt that, with closeAfter, sends the handle's CLOSE
// in the same write as the READs (servers answer one session's requests
// in order, so the READs are served first): one packet and one system
// call less per file, on both ends, and nobody waits for the CLOSE. A
// short answer then cannot be followed up: the prefix read comes back
// with errClosedShort.
func (d *dataChan) readAtClose(h string, b []byte, off int64, piece int, closeAfter bool) (int, error) {
	type part struct {
		lo, hi int
		req    *dataReq
	}
	hs := sftpString(h)
	issue := func(lo, hi int) (*dataReq, error) {
		req := &dataReq{buf: b[lo:hi]}
		var tail [12]byte
		binary.BigEndian.PutUint64(tail[:8], uint64(off)+uint64(lo))
		binary.BigEndian.PutUint32(tail[8:], uint32(hi-lo))
		return req, d.send(fxpRead, req, hs, tail[:])
	}
	var parts []part
	var batch []outPacket
	for lo := 0; lo < len(b); lo += piece {
		hi := min(lo+piece, len(b))
		req := &dataReq{buf: b[lo:hi]}
		tail := make([]byte, 12)
		binary.BigEndian.PutUint64(tail[:8], uint64(off)+uint64(lo))
		binary.BigEndian.PutUint32(tail[8:], uint32(hi-lo))
		batch = append(batch, outPacket{fxpRead, req, [][]byte{hs, tail}})
		parts = append(parts, part{lo, hi, req})
	}
	if closeAfter {
		batch = append(batch, outPacket{fxpClose, &dataReq{}, [][]byte{hs}})
	}
	if err := d.sendBatch(batch); err != nil {
		// Every request is answered or failed: wait until none can
		// still write into b.
		for _, p := range parts {
			<-p.req.done
		}
		return 0, err
	}
	n := 0
	var first error
	for _, p := range parts {
		<-p.req.done
		if first != nil {
			continue
		}
		lo := p.lo
		req := p.req
		for {
			if req.err != nil || req.status != fxOK || req.n == 0 {
				if req.err == nil && req.status == fxOK && req.n == 0 {
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
				first = errClosedShort
				break
			}
			// The server answered less than asked (its own cap): ask
			// for the rest of this part.
			var err error
			req, err = issue(lo, p.hi)
			if err != nil {
				first = err
				break
			}
			<-req.done
		}
	}
	return n, first
}
