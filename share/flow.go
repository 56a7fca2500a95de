package share

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
)

// Flow control of SFTP requests. pkg/sftp reads requests as fast as the
// client sends them and, with its allocator, keeps two 256 KiB pages per
// request until the reply is sent (one for the request, one for READ data),
// reusing them for the rest of the session. A client that sends READs and
// never reads the replies would make it hold one pair per request; one did
// that with about 69,000 READs and took the server to 7.3 GB.
//
// So each session stops reading from its channel while it has as many
// unanswered requests as it may: it counts requests on the way in and
// replies on the way out (one reply per request, in SFTP). A session may
// always have one request in flight; beyond that it takes slots from its
// connection's budget (MaxRequestsPerConn) and keeps them until it ends,
// because the allocator keeps the pages it allocated for as long. So the
// pages of one connection never exceed (MaxRequestsPerConn +
// MaxSessionsPerConn) × 512 KiB; with the SSH receive window each session
// buffers (2 MiB in x/crypto/ssh), see memoryPerConn.
const (
	pagesPerRequest = 2
	sftpPageSize    = 256 << 10
	sshWindowSize   = 2 << 20
)

// memoryPerConn is the bound on request memory of one logged-in
// connection, as the README states it.
func memoryPerConn(o *Options) int64 {
	return int64(o.MaxRequestsPerConn+o.MaxSessionsPerConn)*pagesPerRequest*sftpPageSize +
		int64(o.MaxSessionsPerConn)*sshWindowSize
}

// errSessionGone answers requests still queued when the client has gone:
// the work is skipped, not done for nobody.
var errSessionGone = errors.New("session closed")

// connFlow is the state a logged-in connection's sessions share.
type connFlow struct {
	handles  atomic.Int64 // open files and directories
	inflight atomic.Int64 // unanswered requests, all sessions
	lastReq  atomic.Int64 // unix nanoseconds of the last request
	gone     atomic.Bool  // the SSH connection has ended

	mu     sync.Mutex
	budget int // request slots no session has taken yet
}

func newConnFlow(budget int) *connFlow {
	c := &connFlow{budget: budget}
	c.lastReq.Store(time.Now().UnixNano())
	return c
}

func (c *connFlow) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget <= 0 {
		return false
	}
	c.budget--
	return true
}

func (c *connFlow) give(n int) {
	c.mu.Lock()
	c.budget += n
	c.mu.Unlock()
}

// idleFor reports how long the connection has had no open handle, no
// request in flight and no new request; 0 if it is busy.
func (c *connFlow) idleFor(now time.Time) time.Duration {
	if c.handles.Load() > 0 || c.inflight.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, c.lastReq.Load()))
}

// sessionFlow wraps one session's channel for pkg/sftp: Read waits for a
// free request slot at every packet boundary, Write counts replies.
type sessionFlow struct {
	ch   io.ReadWriteCloser
	conn *connFlow
	max  int // most requests in flight in this session

	mu         sync.Mutex
	cond       sync.Cond
	inflight   int
	peak       int  // slots this session holds (pages the allocator keeps)
	fromBudget int  // of peak, taken from the connection's budget
	closed     bool // no more reading
	gone       atomic.Bool

	// Read side: the packet being read.
	rhead    [4]byte
	rheadN   int
	rremain  int
	rcounted bool // a slot is taken for the packet being read

	// Write side: the reply being written.
	whead   [4]byte
	wheadN  int
	wremain int
}

func newSessionFlow(ch io.ReadWriteCloser, conn *connFlow, max int) *sessionFlow {
	s := &sessionFlow{ch: ch, conn: conn, max: max}
	s.cond.L = &s.mu
	return s
}

// Read hands pkg/sftp at most the rest of the current packet, and before a
// new packet waits until the session may have one more request in flight.
// pkg/sftp reads a packet's 4-byte length and then exactly its body, so a
// Read never needs to span packets.
func (s *sessionFlow) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.rremain > 0 {
		n, err := s.ch.Read(p[:min(len(p), s.rremain)])
		s.rremain -= n
		return n, err
	}
	if !s.rcounted {
		if err := s.acquire(); err != nil {
			return 0, err
		}
		s.rcounted = true
	}
	n, err := s.ch.Read(p[:min(len(p), 4-s.rheadN)])
	copy(s.rhead[s.rheadN:], p[:n])
	s.rheadN += n
	if s.rheadN == 4 {
		s.rremain = int(binary.BigEndian.Uint32(s.rhead[:]))
		s.rheadN, s.rcounted = 0, false
	}
	return n, err
}

// acquire waits for a request slot.
func (s *sessionFlow) acquire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closed:
			return io.EOF
		case s.inflight < s.peak:
		case s.peak == 0:
			s.peak = 1 // every session may have one request in flight
		case s.peak < s.max && s.conn.take():
			s.peak++
			s.fromBudget++
		default:
			s.cond.Wait()
			continue
		}
		s.inflight++
		s.conn.inflight.Add(1)
		s.conn.lastReq.Store(time.Now().UnixNano())
		return nil
	}
}

// Write sends a reply (pkg/sftp writes one packet in one or two calls,
// one call at a time) and frees a slot for each one completed.
func (s *sessionFlow) Write(p []byte) (int, error) {
	n, err := s.ch.Write(p)
	if err != nil {
		s.gone.Store(true)
	}
	rest := p[:n]
	for len(rest) > 0 {
		if s.wremain == 0 {
			k := copy(s.whead[s.wheadN:], rest)
			s.wheadN += k
			rest = rest[k:]
			if s.wheadN < 4 {
				break
			}
			s.wheadN = 0
			if s.wremain = int(binary.BigEndian.Uint32(s.whead[:])); s.wremain == 0 {
				s.answered()
			}
			continue
		}
		k := min(len(rest), s.wremain)
		s.wremain -= k
		rest = rest[k:]
		if s.wremain == 0 {
			s.answered()
		}
	}
	return n, err
}

func (s *sessionFlow) answered() {
	s.mu.Lock()
	if s.inflight > 0 {
		s.inflight--
		s.conn.inflight.Add(-1)
	}
	s.mu.Unlock()
	s.cond.Signal()
}

// Close ends the session: a Read waiting for a slot returns, and the
// requests still queued are skipped (see cancelFiles).
func (s *sessionFlow) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.gone.Store(true)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
	return s.ch.Close()
}

// release returns the session's slots to the connection once pkg/sftp has
// ended (its allocator's pages are freed then).
func (s *sessionFlow) release() {
	s.mu.Lock()
	n := s.fromBudget
	s.fromBudget, s.peak = 0, 0
	s.conn.inflight.Add(-int64(s.inflight))
	s.inflight = 0
	s.mu.Unlock()
	s.conn.give(n)
}

// dead reports whether nobody will read this session's replies.
func (s *sessionFlow) dead() bool { return s.gone.Load() || s.conn.gone.Load() }

// cancelFiles wraps the FileGet handler so that reads still queued when
// the client has gone do no disk I/O.
type cancelFiles struct {
	sftp.FileReader
	s *sessionFlow
}

func (c cancelFiles) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	if c.s.dead() {
		return nil, errSessionGone
	}
	ra, err := c.FileReader.Fileread(r)
	if err != nil {
		return nil, err
	}
	return cancelReaderAt{ra, c.s}, nil
}

type cancelReaderAt struct {
	io.ReaderAt
	s *sessionFlow
}

func (c cancelReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.s.dead() {
		return 0, errSessionGone
	}
	return c.ReaderAt.ReadAt(p, off)
}

// Close closes the file (pkg/sftp closes handles that are io.Closers).
func (c cancelReaderAt) Close() error {
	if cl, ok := c.ReaderAt.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}
