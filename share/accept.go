package share

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/share/limits"
)

// Backoff after a failed accept: EMFILE and ENFILE (out of descriptors),
// ENOMEM, ECONNABORTED and the like are the machine's or one connection's
// trouble, not the listener's. The listener is kept and accept retried, so
// the share serves again once descriptors free up; the pending connections
// wait in the kernel's backlog meanwhile.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptLoop accepts connections until ctx ends or the server shuts down;
// it returns an error only if the listener itself was closed under it.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isShutdown() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			s.log.Warn("accept failed; retrying", "reason", errnoText(err), "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		src := limits.SourceOf(c.RemoteAddr())
		st, err := s.gate.Admit(src, c, time.Now())
		if err != nil {
			limits.Refuse(c)
			s.logRefused(src, c.RemoteAddr(), err)
			continue
		}
		if !s.track(c) {
			st.Leave()
			c.Close()
			return nil
		}
		s.wg.Add(1)
		go s.handleConn(c, st)
	}
}

// logRefused logs a refused connection; the program's log limiter sums
// up a flood of them per source.
func (s *Server) logRefused(src limits.Source, remote net.Addr, why error) {
	s.log.Warn("connection refused: "+why.Error(), "source", src.String(), "remote", remote.String())
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// errnoText is the short cause of an accept error: one log key each.
func errnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return "other error"
}
