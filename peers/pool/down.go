package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers"
)

// Suspects hears of peers that every route failed to reach. The registry
// has it (Registry.Suspect): it stops listing such a peer until something
// newer than since is heard from it, an advert or a dial that reaches it
// (Heard).
type Suspects interface {
	Suspect(id string, since time.Time) bool
	Heard(id string) bool
	Hidden(id string) bool
}

// reprobeEvery is how often a hidden peer is dialed again, so that one
// back on the network (its cable plugged in again) is listed within
// seconds, not at its next advert: a Discord member posts one every
// 15 minutes. A failed dial costs a few packets.
const reprobeEvery = 10 * time.Second

// DownError says that no route reached a peer and none of them met the
// peer itself: every address was refused, unreachable or timed out (or
// answered with another host's key). Cause is the most telling of those
// errnos, the one a file system returns.
type DownError struct {
	Peer  string
	Cause syscall.Errno
	Err   error // what each address or route said
}

func (e *DownError) Error() string {
	return fmt.Sprintf("cannot reach peer %s: %s (%v)", e.Peer, e.Cause.Error(), e.Err)
}

func (e *DownError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, e.Cause) hold, and errors.Is(err,
// ErrUnreachable) for callers that only ask whether the peer is down.
func (e *DownError) Is(target error) bool {
	return target == e.Cause || target == ErrUnreachable
}

// causeRank orders the causes of a failed dial: a refused connection
// says the host is there and dsftp is not, which beats a missing route,
// which beats silence.
var causeRank = map[syscall.Errno]int{
	syscall.ECONNREFUSED: 4,
	syscall.EHOSTUNREACH: 3,
	syscall.ENETUNREACH:  2,
	syscall.ETIMEDOUT:    1,
}

// addrCause classifies the error of one address: the errno of a transport
// failure, answered when the peer itself answered (it refused our keys),
// or 0 for anything else (a route through a member that failed, another
// host's key at that address).
func addrCause(err error) (cause syscall.Errno, answered bool) {
	if errors.Is(err, ErrAuth) {
		return 0, true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// A dial is reset, or closed before SSH began, when the process
		// behind the port dies (or turns connections away) after the
		// kernel or the process accepted it: nothing serves there, as
		// with a refusal.
		return syscall.ECONNREFUSED, false
	}
	for errno := range causeRank {
		if errors.Is(err, errno) {
			return errno, false
		}
	}
	var ne net.Error
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return syscall.ETIMEDOUT, false
	}
	return 0, false
}

// downError joins the failures of every address of a dial. It returns a
// *DownError when no address reached the peer, nil when the peer
// answered (refused our keys) or every address showed another host's key:
// those are for the user to see, not a peer that is gone.
func downError(peer peers.Peer, errs []error) *DownError {
	var cause syscall.Errno
	hostKeys := 0
	for _, err := range errs {
		c, answered := addrCause(err)
		if answered {
			return nil
		}
		var hk *HostKeyError
		if errors.As(err, &hk) {
			hostKeys++
		}
		if causeRank[c] > causeRank[cause] {
			cause = c
		}
	}
	if hostKeys == len(errs) {
		return nil
	}
	if cause == 0 {
		// Only routes through members failed: there is no route.
		cause = syscall.EHOSTUNREACH
	}
	return &DownError{Peer: peerLabel(peer), Cause: cause, Err: errors.Join(errs...)}
}

// noteDown tells the Suspects that every route to peer failed in a dial
// that began at since, unless the peer was heard after since on a
// connection still open (a dial that failed on a busy link, beside a
// connection that still delivers). A hidden peer is dialed again now
// and then (reprobe). A --peer peer is the user's own: it stays listed
// and fails fast with the cause.
func (g *group) noteDown(peer peers.Peer, since time.Time, err error) {
	p := g.pool
	var de *DownError
	if p.opts.Suspects == nil || peer.Source == peers.SourceFlag || !errors.As(err, &de) {
		return
	}
	if g.heardOnLive(since) {
		p.log.Debug("a dial failed but the peer is heard on another connection", "peer", peerLabel(peer), "err", err)
		return
	}
	if p.opts.Suspects.Suspect(peer.ID, since) {
		p.log.Info("peer is gone: every route to it failed", "peer", peerLabel(peer), "cause", de.Cause.Error())
		g.mu.Lock()
		start := !g.reprobing
		g.reprobing = true
		g.mu.Unlock()
		if start {
			go g.reprobe()
		}
	}
}

// heardOnLive reports whether a connection of g that is still open
// heard from the peer after since.
func (g *group) heardOnLive(since time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		if !c.dead.Load() && time.Unix(0, c.heard.Load()).After(since) {
			return true
		}
	}
	return false
}

// reprobe dials the hidden peer every reprobeEvery until a dial reaches
// it (the registry lists it again), something else listed it again, it
// left the registry (Forget) or the pool closed.
func (g *group) reprobe() {
	p := g.pool
	defer func() {
		g.mu.Lock()
		g.reprobing = false
		g.mu.Unlock()
	}()
	t := time.NewTicker(reprobeEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		forgotten := p.groups[g.id] != g
		p.mu.Unlock()
		if forgotten || !p.opts.Suspects.Hidden(g.id) {
			return
		}
		g.mu.Lock()
		peer := g.peer.Clone()
		addrs := g.orderAddrsLocked(p.routeAddrs(peer, peer.Addrs))
		g.mu.Unlock()
		c, _, err := p.dialWithin(peer, addrs, g, p.opts.probeBudget())
		if err != nil && !errors.Is(err, ErrAuth) {
			p.log.Debug("hidden peer still not reached", "peer", peerLabel(peer), "err", err)
			continue
		}
		// Reached, or it answered and refused our keys: it is there.
		if c != nil {
			c.kill(errProbed)
		}
		g.reached(peer)
		return
	}
}

// reached runs after a dial reached the peer: a peer hidden because no
// route reached it is listed again.
func (g *group) reached(peer peers.Peer) {
	s := g.pool.opts.Suspects
	if s != nil && peer.Source != peers.SourceFlag && s.Heard(peer.ID) {
		g.pool.log.Info("peer is back: a dial reached it", "peer", peerLabel(peer))
	}
}

// probeDelay is how long after a lost connection its peer is probed.
const probeDelay = 250 * time.Millisecond

// errProbed closes the connection a probe made: it only showed the peer
// is still there.
var errProbed = errors.New("probe done")

// lost runs when a connection of g ends without us closing it (the peer
// closed it, or went silent), just before it is closed, so that requests
// the closing wakes find the probe under way. When it was the group's
// last one, a dial (within probeBudget) checks at once whether the peer
// is still there, so a peer that died leaves without waiting for
// someone to read from it; when it fails, requests fail fast with its
// cause for a backoff, as after any failed dial. The probe's own
// connection is not kept: a peer whose idle timeout closed ours must not
// be dialed again and again.
func (g *group) lost(c *conn) {
	g.mu.Lock()
	others := false
	for _, o := range g.conns {
		if o != c && !o.dead.Load() {
			others = true
		}
	}
	if others || g.probing || g.pool.isClosed() {
		g.mu.Unlock()
		return
	}
	g.probing = true
	// Without a dial under way the probe is the group's dial: requests
	// meanwhile wait for it rather than dial with the longer Timeout,
	// and fail with its cause. Beside a dial under way (it may have
	// begun long before and have most of Timeout left) it runs alone.
	var d *dialCall
	if g.dialing == nil {
		d = &dialCall{done: make(chan struct{})}
		g.dialing = d
	}
	peer := g.peer.Clone()
	addrs := g.orderAddrsLocked(g.pool.routeAddrs(peer, peer.Addrs))
	g.mu.Unlock()
	// Anything heard of the peer from here on (an advert of its next run
	// with new addresses) outweighs this probe, which dials what was known.
	start := time.Now()
	go func() {
		// A peer that was killed closes its connections a moment before
		// its listening socket: a dial at once may be taken by the dying
		// process and reset, where a moment later it is refused.
		time.Sleep(probeDelay)
		nc, _, err := g.pool.dialWithin(peer, addrs, g, g.pool.opts.probeBudget())
		// The probe ends once its verdict is told, so that whoever sees
		// it over has seen the verdict too.
		defer func() {
			g.mu.Lock()
			g.probing = false
			g.mu.Unlock()
		}()
		g.mu.Lock()
		var wasDown bool
		if err != nil {
			wasDown = g.failedLocked(err, time.Now())
		}
		if d != nil {
			g.dialing = nil
			d.err = err
		}
		g.mu.Unlock()
		if d != nil {
			close(d.done)
		}
		if err != nil {
			g.pool.logDialFailure(peer, wasDown, err)
			g.noteDown(peer, start, err)
			return
		}
		nc.kill(errProbed)
		g.reached(peer)
	}()
}

// logDialFailure logs a failed dial once per outage. A peer that is gone
// is the caller's to report (the errno of a read, the error of `dsftp
// get`), so it goes to the log only; a peer that answered and refused,
// or a host key that does not match, needs the user.
func (p *Pool) logDialFailure(peer peers.Peer, wasDown bool, err error) {
	var de *DownError
	switch {
	case wasDown:
		p.log.Debug("cannot reach peer", "peer", peerLabel(peer), "err", err)
	case errors.As(err, &de):
		p.log.Info("cannot reach peer", "peer", peerLabel(peer), "cause", de.Cause.Error(), "err", de.Err)
	default:
		p.log.Warn("cannot reach peer", "peer", peerLabel(peer), "err", err)
	}
}
