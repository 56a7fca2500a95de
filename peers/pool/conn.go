package pool

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool/internal/sftpwire"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/pkg/sftp"
)

// Read sizes: OpenSSH's sftp-server answers reads of up to 255 KiB and says
// so with the limits@openssh.com extension; every server handles 32 KiB.
const (
	bigPiece   = 255 * 1024
	smallPiece = 32 * 1024
)

// growAt is the number of requests and open files on every connection at
// which a peer gets another connection.
const growAt = 3

// conn is one SSH connection carrying one SFTP client.
type conn struct {
	g     *group
	addr  string
	ssh   link
	sftp  *sftp.Client
	piece int // read request size this server accepts

	// lastData is when SFTP data last arrived (UnixNano); operations time
	// out when it stops moving.
	lastData atomic.Int64
	dmu      sync.Mutex
	data     *sftpwire.Chan // lazily opened, for Readers
	// heard is when anything last arrived from the peer on this
	// connection (UnixNano): bytes of its transport, SFTP data, a
	// keepalive answer (silence.go).
	heard atomic.Int64
	// holding is until when (Unix ns) the peer may rightly hold back
	// every reply: a global request in flight whose answer comes late on
	// purpose (a dial-back check, answered after a fixed delay), and SSH
	// answers global requests, keepalives too, in order.
	holding atomic.Int64
	dead    atomic.Bool
	// reason is why kill closed the connection; set before done closes.
	reason error
	// retiring marks a reverse or relayed connection that a direct one
	// has replaced: it takes no new requests and closes when its last
	// one ends (upgrade.go).
	retiring atomic.Bool
	done     chan struct{} // closed by kill
	killOnce sync.Once

	// Guarded by g.mu.
	inflight int
	lastUsed time.Time
}

// progressReader records when data arrives from the server.
type progressReader struct {
	r io.Reader
	c *conn
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		now := time.Now()
		p.c.lastData.Store(now.UnixNano())
		p.c.noteHeard(now)
	}
	return n, err
}

// dataChan returns the connection's bulk-read session, opening it on first
// use. Call it inside call(), which bounds the round trips.
func (c *conn) dataChan() (*sftpwire.Chan, error) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.data != nil {
		return c.data, nil
	}
	d, err := openDataChan(c.ssh, func(r io.Reader) io.Reader { return progressReader{r, c} })
	if err != nil {
		return nil, err
	}
	c.data = d
	return d, nil
}

// kill closes the connection once; pending calls on it fail promptly.
func (c *conn) kill(reason error) {
	c.killOnce.Do(func() {
		c.dead.Store(true)
		c.reason = reason
		close(c.done)
		if errors.Is(reason, errPeerClosed) && c.g.idleFor(c) > 0 {
			c.g.pool.log.Info("peer closed a connection with nothing in use (its idle timeout, or it stopped)", "peer", c.g.name(), "addr", c.addr)
		} else if !errors.Is(reason, errPoolClosed) && !errors.Is(reason, errIdle) && !errors.Is(reason, errRetired) && !errors.Is(reason, errProbed) && !errors.Is(reason, errSilent) {
			c.g.pool.log.Warn("closing connection to peer", "peer", c.g.name(), "addr", c.addr, "reason", reason)
		} else {
			c.g.pool.log.Debug("closing connection to peer", "peer", c.g.name(), "addr", c.addr, "reason", reason)
		}
		// Closing the SSH transport closes the TCP connection, which
		// unblocks every goroutine waiting on this connection.
		_ = c.ssh.Close()
		_ = c.sftp.Close()
	})
}

var errIdle = errors.New("idle")

// progressKey is the context key of an operation's progress counter
// (withProgress).
type progressKey struct{}

// progressStep is how many units (listed entries) an operation must
// deliver per HardTimeout to keep going past it: a listing of a million
// entries over a slow link (about 110 MB from OpenSSH, over 40 s at
// 20 Mbit/s) finishes, while a peer that drips entries to hold a request
// open is still cut: at most --max-listing / progressStep hard timeouts
// (40 of 40 s with the defaults), for a listing no bigger than any other.
var progressStep int64 = 25000

// withProgress returns ctx carrying n, which the operation adds to as it
// delivers.
func withProgress(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, progressKey{}, n)
}

// call runs fn (which uses c) and returns its error, or returns early:
// with ErrTimeout (closing c) when no SFTP data arrived for the pool's
// Timeout or the hard deadline passed, with context.Canceled when ctx is
// cancelled (the kernel interrupted the request; c stays open). An
// operation that reports progress (withProgress) moves its hard deadline
// on while it delivers at least progressStep units per HardTimeout.
func (c *conn) call(ctx context.Context, fn func() error) error {
	if c.dead.Load() {
		return errConnLost
	}
	opts := &c.g.pool.opts
	start := time.Now()
	hard := start.Add(opts.HardTimeout)
	prog, _ := ctx.Value(progressKey{}).(*atomic.Int64)
	var progressed int64
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(min(opts.Timeout, opts.HardTimeout))
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if errors.Is(err, sftp.ErrSSHFxConnectionLost) {
				// pkg/sftp's word for a connection that broke under the
				// request: asked again on a fresh one (pool.do).
				return errConnLost
			}
			return err
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ErrTimeout
			}
			return ctx.Err()
		case <-c.done:
			select {
			case err := <-done:
				if err == nil {
					return nil
				}
			case <-time.After(100 * time.Millisecond):
			}
			if err := c.silenced(); err != nil {
				// The peer went silent: asking again on a fresh
				// connection would only wait for the same silence.
				return err
			}
			return errConnLost
		case now := <-t.C:
			last := time.Unix(0, c.lastData.Load())
			if last.Before(start) {
				last = start
			}
			quiet := now.Sub(last)
			if quiet < opts.Timeout && !now.Before(hard) && prog != nil && prog.Load()-progressed >= progressStep {
				progressed = prog.Load()
				hard = now.Add(opts.HardTimeout)
			}
			if quiet >= opts.Timeout || !now.Before(hard) {
				c.kill(ErrTimeout)
				return ErrTimeout
			}
			next := opts.Timeout - quiet
			if h := hard.Sub(now); h < next {
				next = h
			}
			t.Reset(next)
		}
	}
}

// group is the set of connections to one peer.
type group struct {
	pool *Pool
	id   string

	mu       sync.Mutex
	peer     peers.Peer
	conns    []*conn
	dialing  *dialCall
	nextDial time.Time     // no new dial before this (backoff)
	failedAt time.Time     // when the last dial failed
	backoff  time.Duration // current backoff step
	lastErr  error         // why the last dial failed
	good     string        // address that worked last
	badUntil map[string]time.Time
	down     bool // last dial failed (for logging state changes)
	// While connections go through other members, a direct dial is
	// tried now and then (upgrade.go).
	upgrading   bool
	nextUpgrade time.Time
	probing     bool // a dial checks whether the peer is still there (down.go)
	reprobing   bool // the peer is hidden and dialed now and then (down.go)
	// heard is when this run of the peer (its Instance) was first seen:
	// for a moment after, its share may not know our key yet.
	heard time.Time
	// lastHeard is when anything last arrived from the peer on any of
	// the group's connections (UnixNano, silence.go).
	lastHeard atomic.Int64
}

// keyGrace is how long after a run of a peer is first seen a refused key
// is tried again (every keyRetry) rather than reported: its share learns
// our key from our advert, which it may hear a moment after we heard its.
const (
	keyGrace = 3 * time.Second
	keyRetry = 250 * time.Millisecond
)

// learningKeyLocked reports whether err is a refused key that the peer's
// share may still be learning.
func (g *group) learningKeyLocked(err error) bool {
	return errors.Is(err, ErrAuth) && time.Since(g.heard) < keyGrace
}

type dialCall struct {
	done  chan struct{}
	err   error
	ahead bool // a dial ahead of any request (Warm): its failure counts for nothing
}

func newGroup(p *Pool, peer peers.Peer) *group {
	return &group{pool: p, id: peer.ID, peer: peer, badUntil: map[string]time.Time{}, heard: time.Now()}
}

func (g *group) name() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return peerLabel(g.peer)
}

func (g *group) idleFor(c *conn) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.inflight > 0 {
		return 0
	}
	return time.Since(c.lastUsed)
}

// acquire returns a live connection with the fewest requests in flight,
// dialing another one when all are busy and the peer has fewer than
// Connections. Without any live connection it waits for a dial (bounded by
// the dial timeout and ctx), or fails at once during backoff.
func (g *group) acquire(ctx context.Context, peer peers.Peer) (*conn, error) {
	for {
		g.mu.Lock()
		if g.peer.Instance != peer.Instance {
			g.heard = time.Now()
		}
		if !slices.Equal(g.peer.Addrs, peer.Addrs) || g.peer.Unreachable != peer.Unreachable || g.peer.Instance != peer.Instance ||
			peer.Updated.After(g.failedAt) && !g.failedAt.IsZero() {
			// New addresses (a re-advert after a router reboot or a
			// move) have not failed yet: dial them now, not after the
			// backoff the old ones earned; and try them directly now
			// if the peer is reached through another member. So does
			// an advert that came after the last dial failed (a cable
			// plugged back in): the peer says it is there again.
			g.nextDial = time.Time{}
			g.backoff = 0
			g.nextUpgrade = time.Time{}
		}
		g.peer = peer
		live := g.conns[:0]
		for _, c := range g.conns {
			if !c.dead.Load() {
				live = append(live, c)
			}
		}
		clear(g.conns[len(live):])
		g.conns = live
		var best *conn
		for _, c := range live {
			if c.retiring.Load() {
				continue
			}
			if best == nil || c.inflight < best.inflight {
				best = c
			}
		}
		if best != nil {
			g.maybeUpgradeLocked(best)
		}
		max := g.pool.opts.Connections
		canGrow := len(live) < max && g.dialing == nil && !time.Now().Before(g.nextDial)
		if best != nil {
			// One SFTP session pipelines many requests; another
			// connection (a costly handshake, and on OpenSSH a new server
			// process) pays off only once the least busy one is loaded.
			if best.inflight >= growAt && canGrow {
				g.startDialLocked()
			}
			best.inflight++
			g.mu.Unlock()
			return best, nil
		}
		if g.dialing == nil {
			if time.Now().Before(g.nextDial) {
				err := g.lastErr
				g.mu.Unlock()
				return nil, err
			}
			g.startDialLocked()
		}
		d := g.dialing
		g.mu.Unlock()
		select {
		case <-d.done:
			g.mu.Lock()
			learning := g.learningKeyLocked(d.err)
			g.mu.Unlock()
			if learning {
				select {
				case <-time.After(keyRetry):
					continue
				case <-ctx.Done():
				}
			}
			if d.err != nil && !d.ahead {
				return nil, d.err
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, ErrTimeout
			}
			return nil, ctx.Err()
		}
	}
}

// release ends a request on c; an error that shows the connection is
// broken closes it, so the next request dials afresh.
func (g *group) release(c *conn, err error) {
	g.mu.Lock()
	c.inflight--
	c.lastUsed = time.Now()
	idle := c.inflight == 0
	g.mu.Unlock()
	if connBroken(err) {
		g.lost(c)
		c.kill(err)
	} else if idle && c.retiring.Load() {
		c.kill(errRetired)
	}
}

func (g *group) startDialLocked() { g.startDialAheadLocked(false) }

// failedLocked records a dial that failed at now with err: requests
// fail fast with err until the backoff ends. It reports whether the peer
// was down already.
func (g *group) failedLocked(err error, now time.Time) (wasDown bool) {
	g.lastErr = err
	if g.backoff == 0 {
		g.backoff = 500 * time.Millisecond
	} else if g.backoff < 5*time.Second {
		g.backoff *= 2
	}
	g.nextDial = now.Add(g.backoff)
	g.failedAt = now
	wasDown = g.down
	g.down = true
	return wasDown
}

// startDialAheadLocked starts a dial; ahead marks one that no request
// asked for (Warm). Its failure earns no backoff and does not mark the
// peer down: the peer may not know our key yet (its share learns it from
// our advert), and a request then dials afresh.
func (g *group) startDialAheadLocked(ahead bool) {
	d := &dialCall{done: make(chan struct{}), ahead: ahead}
	g.dialing = d
	peer := g.peer.Clone()
	addrs := g.orderAddrsLocked(g.pool.routeAddrs(peer, peer.Addrs))
	go func() {
		start := time.Now()
		c, addr, err := g.pool.dial(peer, addrs, g)
		g.mu.Lock()
		g.dialing = nil
		now := time.Now()
		if err != nil && ahead {
			d.err = err
			g.mu.Unlock()
			g.pool.log.Debug("could not connect ahead of the first request", "peer", peerLabel(peer), "err", err)
			close(d.done)
			return
		}
		if err != nil && g.learningKeyLocked(err) {
			// No backoff: the request that waits asks again (acquire).
			d.err = err
			g.lastErr = err
			g.mu.Unlock()
			close(d.done)
			return
		}
		if err != nil {
			d.err = err
			wasDown := g.failedLocked(err, now)
			g.mu.Unlock()
			g.pool.logDialFailure(peer, wasDown, err)
			close(d.done)
			g.noteDown(peer, start, err)
			return
		}
		g.good = addr
		g.backoff = 0
		g.nextDial = time.Time{}
		wasDown := g.down
		g.down = false
		c.lastUsed = now
		closed := g.pool.isClosed()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		if closed {
			c.kill(errPoolClosed)
		} else {
			g.reached(peer)
		}
		if wasDown {
			g.pool.log.Info("peer reachable after failed attempts", "peer", peerLabel(peer), "addr", addr, "route", g.pool.routeName(addr))
		} else if r := g.pool.routeName(addr); r == route.Punched {
			g.pool.log.Info("peer reached over a punched QUIC path", "peer", peerLabel(peer), "route", r)
		} else if r == route.TURN {
			g.pool.log.Info("peer reached over a QUIC path through a TURN relay", "peer", peerLabel(peer), "route", r)
		} else if r != "direct" {
			g.pool.log.Info("peer reached without dialing it: over its reverse connection or relayed by a member", "peer", peerLabel(peer), "route", r)
		}
		g.watch(c)
		close(d.done)
	}()
}

// watch keeps c alive and closes it when its SSH connection ends.
func (g *group) watch(c *conn) {
	go c.keepalive()
	go func() {
		_ = c.ssh.Wait()
		if !c.dead.Load() {
			g.lost(c)
			c.kill(errPeerClosed)
		}
	}()
}

// orderAddrsLocked puts the address that worked last first and addresses
// that failed recently last.
func (g *group) orderAddrsLocked(addrs []string) []string {
	now := time.Now()
	var first, mid, last []string
	for _, a := range addrs {
		switch {
		case a == g.good:
			first = append(first, a)
		case now.Before(g.badUntil[a]):
			last = append(last, a)
		default:
			mid = append(mid, a)
		}
	}
	return append(append(first, mid...), last...)
}

func (g *group) markBad(addr string, d time.Duration) {
	g.mu.Lock()
	g.badUntil[addr] = time.Now().Add(d)
	g.mu.Unlock()
}

func (g *group) closeAll(reason error) {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		c.kill(reason)
	}
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
