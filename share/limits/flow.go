package limits

import (
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Flow control of SFTP requests. pkg/sftp reads requests as fast as the
// client sends them and, with its allocator, keeps two 256 KiB pages per
// request until the reply is sent (one for the request, one for READ data),
// reusing them for the rest of the session. A client that sends READs and
// never reads the replies would make it hold one pair per request; one did
// that with about 69,000 READs and took the server to 7.3 GB.
//
// So each session (Flow) hands pkg/sftp a new request only while it has
// fewer unanswered ones than it may: it counts requests on the way in and
// replies on the way out (one reply per request, in SFTP). A session may
// always have one request in flight; beyond that it takes slots from its
// connection's budget (Requests, Options.MaxRequestsPerConn) and keeps
// them until it ends, because the allocator keeps the pages it allocated
// for as long. So the pages of one connection never exceed
// (MaxRequestsPerConn + sessions) × 512 KiB.
//
// The requests waiting behind the cap are read off the channel at once
// into a plain byte buffer of at most MaxQueued bytes; a session that
// queues more is closed. Leaving them in x/crypto/ssh instead would cost
// far more than the 2 MiB window suggests: it keeps every SSH message
// apart, about 100 bytes of bookkeeping for a 30-byte READ request (a
// flood measured 40 MiB for four sessions), more for smaller messages.
// No real client queues that much: 1 MiB is some 30,000 READ requests.
const (
	// MaxQueued is the most a session queues behind its cap, in bytes.
	MaxQueued = 1 << 20
	// ReadChunk is what a session reads off its channel at once: its
	// queue holds at most MaxQueued + ReadChunk bytes.
	ReadChunk = 32 << 10
)

// Requests is the budget of SFTP requests in flight that the sessions of
// one logged-in connection share.
type Requests struct {
	inflight atomic.Int64 // unanswered requests, all sessions
	last     atomic.Int64 // unix nanoseconds of the last request
	perFlow  int          // most requests in flight in one session

	mu     sync.Mutex
	budget int // request slots no session has taken yet
}

// NewRequests returns the request budget of a new logged-in connection.
func (g *Gate) NewRequests() *Requests {
	r := &Requests{perFlow: g.opts.MaxRequestsPerConn + 1, budget: g.opts.MaxRequestsPerConn}
	r.last.Store(time.Now().UnixNano())
	return r
}

// InFlight is the number of requests of the connection not answered yet.
func (r *Requests) InFlight() int64 { return r.inflight.Load() }

// Last is when the connection's last request began to arrive, or when it
// logged in.
func (r *Requests) Last() time.Time { return time.Unix(0, r.last.Load()) }

func (r *Requests) take() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.budget <= 0 {
		return false
	}
	r.budget--
	return true
}

func (r *Requests) give(n int) {
	r.mu.Lock()
	r.budget += n
	r.mu.Unlock()
}

// Flow wraps one SFTP session's channel for pkg/sftp: a pump reads the
// channel into a bounded buffer, Read hands out a new request only when a
// request slot is free, Write counts replies.
type Flow struct {
	ch         io.ReadWriteCloser
	conn       *Requests
	max        int    // most requests in flight in this session
	onOverflow func() // called when the client queued over MaxQueued

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

// NewFlow starts the flow control of a session of r's connection on ch;
// onOverflow, if not nil, is called when the session is closed for
// queueing more than MaxQueued bytes. Call Release once pkg/sftp is done
// with the session.
func (r *Requests) NewFlow(ch io.ReadWriteCloser, onOverflow func()) *Flow {
	f := &Flow{ch: ch, conn: r, max: r.perFlow, onOverflow: onOverflow}
	f.cond.L = &f.mu
	go f.pump()
	return f
}

// pump reads the channel until it ends, so x/crypto/ssh never holds
// queued requests (see MaxQueued).
func (f *Flow) pump() {
	buf := make([]byte, ReadChunk)
	for {
		n, err := f.ch.Read(buf)
		f.mu.Lock()
		if f.inOff == len(f.in) {
			f.in, f.inOff = f.in[:0], 0
		} else if f.inOff >= ReadChunk {
			f.in = f.in[:copy(f.in, f.in[f.inOff:])]
			f.inOff = 0
		}
		f.in = append(f.in, buf[:n]...)
		over := len(f.in)-f.inOff > MaxQueued
		if err != nil {
			f.inErr = err
		}
		f.mu.Unlock()
		f.cond.Broadcast()
		if over {
			if f.onOverflow != nil {
				f.onOverflow()
			}
			f.Close()
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
func (f *Flow) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.inOff == len(f.in) {
		switch {
		case f.closed:
			return 0, io.EOF
		case f.inErr != nil:
			return 0, f.inErr
		}
		f.cond.Wait()
	}
	// A slot is taken once a request has begun to arrive, not while the
	// session waits for one: a waiting session is idle.
	if f.rremain == 0 && !f.rcounted {
		if err := f.acquireLocked(); err != nil {
			return 0, err
		}
		f.rcounted = true
	}
	want := f.rremain
	if want == 0 {
		want = 4 - f.rheadN
	}
	n := copy(p[:min(len(p), want)], f.in[f.inOff:])
	f.inOff += n
	if f.rremain > 0 {
		f.rremain -= n
		return n, nil
	}
	copy(f.rhead[f.rheadN:], p[:n])
	f.rheadN += n
	if f.rheadN == 4 {
		f.rremain = int(binary.BigEndian.Uint32(f.rhead[:]))
		f.rheadN, f.rcounted = 0, false
	}
	return n, nil
}

// acquireLocked waits for a request slot; f.mu is held.
func (f *Flow) acquireLocked() error {
	for {
		switch {
		case f.closed:
			return io.EOF
		case f.inflight < f.peak:
		case f.peak == 0:
			f.peak = 1 // every session may have one request in flight
		case f.peak < f.max && f.conn.take():
			f.peak++
			f.fromBudget++
		default:
			f.cond.Wait()
			continue
		}
		f.inflight++
		f.conn.inflight.Add(1)
		f.conn.last.Store(time.Now().UnixNano())
		return nil
	}
}

// Write sends a reply (pkg/sftp writes one packet in one or two calls,
// one call at a time) and frees a slot for each one completed.
func (f *Flow) Write(p []byte) (int, error) {
	n, err := f.ch.Write(p)
	if err != nil {
		f.gone.Store(true)
	}
	rest := p[:n]
	for len(rest) > 0 {
		if f.wremain == 0 {
			k := copy(f.whead[f.wheadN:], rest)
			f.wheadN += k
			rest = rest[k:]
			if f.wheadN < 4 {
				break
			}
			f.wheadN = 0
			if f.wremain = int(binary.BigEndian.Uint32(f.whead[:])); f.wremain == 0 {
				f.answered()
			}
			continue
		}
		k := min(len(rest), f.wremain)
		f.wremain -= k
		rest = rest[k:]
		if f.wremain == 0 {
			f.answered()
		}
	}
	return n, err
}

func (f *Flow) answered() {
	f.mu.Lock()
	if f.inflight > 0 {
		f.inflight--
		f.conn.inflight.Add(-1)
	}
	f.mu.Unlock()
	f.cond.Broadcast()
}

// Close ends the session: a Read waiting for a slot returns, and Gone
// reports true.
func (f *Flow) Close() error {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		f.gone.Store(true)
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	return f.ch.Close()
}

// Release returns the session's slots to the connection once pkg/sftp has
// ended (its allocator's pages are freed then).
func (f *Flow) Release() {
	f.mu.Lock()
	n := f.fromBudget
	f.fromBudget, f.peak = 0, 0
	f.conn.inflight.Add(-int64(f.inflight))
	f.inflight = 0
	f.mu.Unlock()
	f.conn.give(n)
}

// Gone reports whether the session was closed or a reply could not be
// sent: nobody will read its replies.
func (f *Flow) Gone() bool { return f.gone.Load() }
