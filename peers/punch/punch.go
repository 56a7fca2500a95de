package punch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
)

// ErrNoPath says that no QUIC handshake with the peer completed: neither a
// dial of its candidates nor its dial of ours.
var ErrNoPath = errors.New("no QUIC path to the peer")

// pickGrace is how long the member with the smaller ID waits for its own
// dial once the peer's has completed: both handshakes, when both get
// through, end within a round trip or two of each other. The other member
// waits four times as long for the preferred connection before it keeps
// its own, so that on a slow machine the two do not settle on different
// connections.
const pickGrace = 500 * time.Millisecond

// punchWait is a punch waiting for the peer's dial to arrive.
type punchWait struct {
	from string              // idHash of the peer
	ips  map[netip.Addr]bool // the peer's candidate addresses
	ch   chan *quic.Conn
}

// Punch opens a path to the member peer (its ID) at any of its candidate
// addresses (local, public from STUN), while the peer does the same towards
// this endpoint's candidates: each side's handshake packets open its own
// NAT towards the other, so whichever arrives after the other side's went
// out gets through. The first handshake that completes is used, in either
// direction. When both complete, both sides keep the connection that the
// member with the smaller ID dialed, and the other member closes the one it
// dialed. ctx bounds the attempt; the peer must start within it.
func (e *Endpoint) Punch(ctx context.Context, peer string, candidates []netip.AddrPort) (*Path, error) {
	if e.cfg.ID == "" || peer == "" {
		return nil, errors.New("punch: both members need an ID")
	}
	if peer == e.cfg.ID {
		return nil, errors.New("punch: the peer is this member")
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("punch: %w: the peer has no UDP candidates", ErrNoPath)
	}
	start := time.Now()
	w := &punchWait{from: idHash(peer), ips: map[netip.Addr]bool{}, ch: make(chan *quic.Conn, 1)}
	for _, c := range candidates {
		w.ips[c.Addr().Unmap()] = true
	}
	e.mu.Lock()
	e.waiters[w] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.waiters, w)
		e.mu.Unlock()
	}()

	dctx, cancelDials := context.WithCancel(ctx)
	defer cancelDials()
	results := make(chan dialResult, len(candidates))
	for _, c := range candidates {
		go func() {
			qc, err := e.dial(dctx, c, peer)
			results <- dialResult{qc, err}
		}()
	}
	preferOwn := e.cfg.ID < peer
	pending := len(candidates)
	var own, incoming *quic.Conn
	var errs []string
	var grace <-chan time.Time
loop:
	for {
		switch {
		case preferOwn && own != nil, !preferOwn && incoming != nil:
			break loop
		case own != nil || incoming != nil:
			if preferOwn && pending == 0 {
				break loop // every own dial is over; take the peer's
			}
			if grace == nil {
				wait := pickGrace
				if !preferOwn {
					wait *= 4
				}
				grace = time.After(wait)
			}
		}
		select {
		case r := <-results:
			pending--
			switch {
			case r.err != nil:
				errs = append(errs, r.err.Error())
			case own == nil:
				own = r.c
			default:
				r.c.CloseWithError(0, "another candidate answered first")
			}
		case c := <-w.ch:
			if incoming == nil {
				incoming = c
			}
		case <-grace:
			break loop
		case <-ctx.Done():
			if own != nil || incoming != nil {
				break loop
			}
			return nil, e.punchFailed(peer, candidates, start, errs, ctx.Err())
		case <-e.ctx.Done():
			return nil, errClosed
		}
	}
	cancelDials()
	go closeLate(results, pending)

	var p *Path
	switch {
	case preferOwn && own != nil, incoming == nil:
		p = &Path{conn: own, Dialed: true}
	default:
		p = &Path{conn: incoming}
		if own != nil {
			own.CloseWithError(0, "the peer's connection is used")
		}
	}
	e.log.Debug("punched a QUIC path", "peer", peer, "remote", p.RemoteAddr(), "dialed", p.Dialed,
		"took", time.Since(start).Round(time.Millisecond))
	return p, nil
}

type dialResult struct {
	c   *quic.Conn
	err error
}

// closeLate closes the connections of dials that complete after the pick.
func closeLate(results <-chan dialResult, pending int) {
	for ; pending > 0; pending-- {
		if r := <-results; r.c != nil {
			r.c.CloseWithError(0, "another path was picked")
		}
	}
}

func (e *Endpoint) punchFailed(peer string, cands []netip.AddrPort, start time.Time, errs []string, cause error) error {
	list := make([]string, len(cands))
	for i, c := range cands {
		list[i] = c.String()
	}
	msg := fmt.Sprintf("punch: %v after %v: dialed %s, and no handshake from the peer arrived", ErrNoPath,
		time.Since(start).Round(100*time.Millisecond), strings.Join(list, ", "))
	if len(errs) > 0 {
		msg += " (" + errs[len(errs)-1] + ")"
	}
	e.log.Debug("punch failed", "peer", peer, "candidates", list, "cause", cause)
	return &punchError{msg: msg}
}

type punchError struct{ msg string }

func (p *punchError) Error() string { return p.msg }
func (p *punchError) Unwrap() error { return ErrNoPath }

// offer gives an accepted connection to the punch waiting for its dialer.
func (e *Endpoint) offer(c *quic.Conn) {
	_, from, ok := parseServerName(c.ConnectionState().TLS.ServerName)
	if !ok {
		return
	}
	ip := addrPort(c.RemoteAddr()).Addr()
	e.mu.Lock()
	defer e.mu.Unlock()
	for w := range e.waiters {
		if w.from == from && w.ips[ip] {
			select {
			case w.ch <- c:
			default:
			}
			return
		}
	}
}
