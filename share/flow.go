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
// So each session hands pkg/sftp a new request only while it has fewer
// unanswered ones than it may: it counts requests on the way in and
// replies on the way out (one reply per request, in SFTP). A session may
// always have one request in flight; beyond that it takes slots from its
// connection's budget (MaxRequestsPerConn) and keeps them until it ends,
// because the allocator keeps the pages it allocated for as long. So the
// pages of one connection never exceed (MaxRequestsPerConn +
// MaxSessionsPerConn) × 512 KiB.
//
// The requests waiting behind the cap are read off the channel at once
// into a plain byte buffer of at most maxPending bytes; a session that
// queues more is closed. Leaving them in x/crypto/ssh instead would cost
// far more than the 2 MiB window suggests: it keeps every SSH message
// apart, about 100 bytes of bookkeeping for a 30-byte READ request (a
// flood measured 40 MiB for four sessions), more for smaller messages.
// No real client queues that much: 1 MiB is some 30,000 READ requests.
const (
	pagesPerRequest = 2
	sftpPageSize    = 256 << 10
	maxPending      = 1 << 20
	pumpChunk       = 32 << 10
)

// errSessionGone answers requests still queued when the client has gone:
// the work is skipped, not done for nobody.
var errSessionGone = errors.New("session closed")

// connFlow is the state a logged-in connection's sessions share.
type connFlow struct {
	handles  atomic.Int64                // open files and directories
	inflight atomic.Int64                // unanswered requests, all sessions
	lastReq  atomic.Int64                // unix nanoseconds of the last request
	gone     atomic.Bool                 // the SSH connection has ended
	busy     atomic.Int64                // extensions using it (ConnInfo.Busy), e.g. relays
	hold     atomic.Pointer[heldReverse] // the reverse connection it carries, if any

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
// request in flight, no busy extension (a relay, which ends itself once
// idle) and no new request; 0 if it is busy.
func (c *connFlow) idleFor(now time.Time) time.Duration {
	if c.handles.Load() > 0 || c.inflight.Load() > 0 || c.busy.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, c.lastReq.Load()))
}

// sessionFlow wraps one session's channel for pkg/sftp: a pump reads the
// channel into a bounded buffer, Read hands out a new request only when a
// request slot is free, Write counts replies.
type sessionFlow struct {
	ch         io.ReadWriteCloser
	conn       *connFlow
	max        int    // most requests in flight in this session
	onOverflow func() // called when the client queued over maxPending

	mu         sync.Mutex
	cond       sync.Cond // slots freed, data arrived, closed
	inflight   int
	peak       int  // slots this session holds (pages the allocator keeps)
	fromBudget int  // of peak, taken from the connection's budget
	closed     bool // no more reading
	gone       atomic.Bool

	// Read side: bytes read off the channel, and the packet being read.
	in       []byte
	inOff    int
	inErr    error
	rhead    [4]byte
	rheadN   int
	rremain  int
	rcounted bool // a slot is taken for the packet being read

	// Write side: the reply being written.
	whead   [4]byte
	wheadN  int
	wremain int
}

func newSessionFlow(ch io.ReadWriteCloser, conn *connFlow, max int, onOverflow func()) *sessionFlow {
	s := &sessionFlow{ch: ch, conn: conn, max: max, onOverflow: onOverflow}
	s.cond.L = &s.mu
	go s.pump()
	return s
}

// pump reads the channel until it ends, so x/crypto/ssh never holds
// queued requests (see maxPending).
func (s *sessionFlow) pump() {
	buf := make([]byte, pumpChunk)
	for {
		n, err := s.ch.Read(buf)
		s.mu.Lock()
		if s.inOff == len(s.in) {
			s.in, s.inOff = s.in[:0], 0
		} else if s.inOff >= pumpChunk {
			s.in = s.in[:copy(s.in, s.in[s.inOff:])]
			s.inOff = 0
		}
		s.in = append(s.in, buf[:n]...)
		over := len(s.in)-s.inOff > maxPending
		if err != nil {
			s.inErr = err
		}
		s.mu.Unlock()
		s.cond.Broadcast()
		if over {
			if s.onOverflow != nil {
				s.onOverflow()
			}
			s.Close()
			return
		}
		if err != nil {
			return
		}
	}
}

// Read hands pkg/sftp at most the rest of the current packet, and before a
// new packet waits until the session may have one more request in flight.
// pkg/sftp reads a packet's 4-byte length and then exactly its body, so a
// Read never needs to span packets.
func (s *sessionFlow) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.inOff == len(s.in) {
		switch {
		case s.closed:
			return 0, io.EOF
		case s.inErr != nil:
			return 0, s.inErr
		}
		s.cond.Wait()
	}
	// A slot is taken once a request has begun to arrive, not while the
	// session waits for one: a waiting session is idle.
	if s.rremain == 0 && !s.rcounted {
		if err := s.acquireLocked(); err != nil {
			return 0, err
		}
		s.rcounted = true
	}
	want := s.rremain
	if want == 0 {
		want = 4 - s.rheadN
	}
	n := copy(p[:min(len(p), want)], s.in[s.inOff:])
	s.inOff += n
	if s.rremain > 0 {
		s.rremain -= n
		return n, nil
	}
	copy(s.rhead[s.rheadN:], p[:n])
	s.rheadN += n
	if s.rheadN == 4 {
		s.rremain = int(binary.BigEndian.Uint32(s.rhead[:]))
		s.rheadN, s.rcounted = 0, false
	}
	return n, nil
}

// acquireLocked waits for a request slot; s.mu is held.
func (s *sessionFlow) acquireLocked() error {
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
	s.cond.Broadcast()
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
