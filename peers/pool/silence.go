package pool

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// A peer whose cable was pulled closes nothing: its packets just stop.
// Each connection therefore watches for silence. Anything that arrives
// from the peer counts as hearing it (transport bytes, SFTP data, a
// keepalive answer), so a slow or busy link that still delivers is never
// silent, and a keepalive is sent only after pingAfter without a byte:
// an idle connection costs one small request and answer per pingAfter,
// a busy one none.
//
// errSilent closes the connections of a peer that sent nothing though
// pinged; an operation waiting on one fails with it (ETIMEDOUT).
var errSilent = fmt.Errorf("peer sent nothing though pinged: %w", ErrTimeout)

// silence returns after how much silence a connection pings its peer
// (Timeout/2) and after how much silence of the whole peer, with a ping
// unanswered, its connections are given up (4/5 of Timeout). With the
// probe after it (probeBudget), a peer whose cable was pulled leaves the
// listing about 1.25 × Timeout after its last packet: 12.5 s with the
// default Timeout.
func (o *Options) silence() (ping, lost time.Duration) {
	return o.Timeout / 2, o.Timeout * 4 / 5
}

// probeBudget bounds the dial that checks, after a peer's last
// connection went silent or was closed, whether it is still there
// (down.go): a healthy peer answers a new dial in a few round trips.
func (o *Options) probeBudget() time.Duration { return o.Timeout * 2 / 5 }

// noteHeard records that something arrived from the peer on c at now.
func (c *conn) noteHeard(now time.Time) {
	n := now.UnixNano()
	c.heard.Store(n)
	if c.g != nil {
		c.g.lastHeard.Store(n)
	}
}

func (c *conn) sinceHeard(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, c.heard.Load()))
}

// sinceHeard is how long nothing arrived from the peer on any connection.
func (g *group) sinceHeard(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, g.lastHeard.Load()))
}

// silenced returns errSilent when c was closed because its peer went
// silent, nil otherwise.
func (c *conn) silenced() error {
	select {
	case <-c.done:
		if errors.Is(c.reason, errSilent) {
			return c.reason
		}
	default:
	}
	return nil
}

// timedOut returns the reason c was closed when that was a timeout (its
// peer's silence, or a request's deadline), nil otherwise: a read caught
// in the close reports that cause, not the transport's end (EIO).
func (c *conn) timedOut() error {
	select {
	case <-c.done:
		if errors.Is(c.reason, ErrTimeout) {
			return c.reason
		}
	default:
	}
	return nil
}

// heardConn notes every read of the stream under an SSH connection.
type heardConn struct {
	net.Conn
	c *conn
}

func (h heardConn) Read(b []byte) (int, error) {
	n, err := h.Conn.Read(b)
	if n > 0 {
		h.c.noteHeard(time.Now())
	}
	return n, err
}

// keepalive watches c for silence until it dies. A connection silent
// for lost while the whole peer is silent too, with a keepalive sent
// at least lost−ping ago and unanswered, is closed and the peer probed
// (lost). A connection silent for 2×Timeout while the peer is heard on
// another one is closed alone: that path broke (a NAT forgot it), the
// peer did not. It also closes c after IdleTimeout without requests.
func (c *conn) keepalive() {
	opts := &c.g.pool.opts
	pingAfter, lostAfter := opts.silence()
	check := max(lostAfter/16, 10*time.Millisecond)
	var pong chan error // the answer to the keepalive in flight
	var pinged time.Time
	t := time.NewTimer(pingAfter)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case err := <-pong:
			pong = nil
			if err != nil {
				c.g.lost(c)
				c.kill(err)
				return
			}
			c.noteHeard(time.Now())
		case <-t.C:
		}
		if c.g.idleFor(c) > opts.IdleTimeout {
			c.kill(errIdle)
			return
		}
		now := time.Now()
		quiet := c.sinceHeard(now)
		unanswered := pong != nil && now.Sub(pinged) >= lostAfter-pingAfter
		held := now.UnixNano() < c.holding.Load()
		if unanswered && !held && quiet >= lostAfter && (c.g.sinceHeard(now) >= lostAfter || quiet >= 2*opts.Timeout) {
			c.g.lost(c)
			c.kill(errSilent)
			return
		}
		if pong == nil && quiet >= pingAfter {
			pong, pinged = make(chan error, 1), now
			go c.ping(pong)
		}
		if pong == nil {
			t.Reset(pingAfter - quiet)
		} else {
			t.Reset(check)
		}
	}
}

// ping sends one keepalive and reports its outcome; it returns when the
// answer comes or c closes.
func (c *conn) ping(reply chan<- error) {
	_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
	reply <- err
}
