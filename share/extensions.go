package share

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"golang.org/x/crypto/ssh"
)

// Extensions serve what the share's SSH server does not serve itself on
// a logged-in connection: global requests, and channel types other than
// "session". dsftp's routes between members (peers/route) are wired in
// here by the bring-up; the share knows nothing of them.
type Extensions interface {
	// Conn is called once per logged-in connection, before its first
	// request or channel.
	Conn(c ConnInfo) ConnExtension
}

// ConnExtension serves one connection's extensions.
type ConnExtension interface {
	// Request answers req (replying if it wants a reply) and reports
	// whether it was one of its own; the share refuses the others.
	// Requests come one at a time, in order.
	Request(req *ssh.Request) bool
	// Channel takes nc (accepting or rejecting it; without blocking, so
	// serving happens in the background) and reports whether it was one
	// of its own; the share rejects the others.
	Channel(nc ssh.NewChannel) bool
	// Close is called once the connection has ended and no more
	// requests or channels come; it returns once what it serves ended.
	Close()
}

// ConnInfo is a logged-in connection, for Extensions: who it is, and the
// share's hooks for it.
type ConnInfo struct {
	// ClientKey is the fingerprint of the key it logged in with; "" for
	// a password login.
	ClientKey string
	// Conn is the SSH connection.
	Conn ssh.Conn
	// Log is the connection's logger (rate-limited like the share's).
	Log *slog.Logger
	// Busy keeps the connection from being closed as idle until the
	// function it returns is called.
	Busy func() (done func())
	// HoldReverse marks the connection as carrying a member's reverse
	// connection (its share offered back to us, host key fingerprint
	// hostKey): it is read through a bulk buffer, and kept, however
	// long it carries nothing, while live reports true; once false it is
	// closed.
	HoldReverse func(hostKey string, live func() bool)
}

// extensions starts the connection's extensions; nil without any.
func (s *Server) extensions(log *slog.Logger, sconn *ssh.ServerConn, clientKey string, hc *helloConn, flow *connFlow) ConnExtension {
	if s.opts.Extensions == nil {
		return nil
	}
	return s.opts.Extensions.Conn(ConnInfo{
		ClientKey: clientKey,
		Conn:      sconn,
		Log:       log,
		Busy: func() func() {
			flow.busy.Add(1)
			return func() { flow.busy.Add(-1) }
		},
		HoldReverse: func(hostKey string, live func() bool) {
			hc.bulk.Store(true)
			flow.hold.Store(&heldReverse{hostKey: hostKey, live: live})
		},
	})
}

// heldReverse is what keeps a connection that carries a reverse
// connection open (HoldReverse).
type heldReverse struct {
	hostKey string
	live    func() bool
}

// globalRequests answers a logged-in connection's global requests: its
// extensions', if any; no port forwarding, no keepalive replies needed.
func globalRequests(ext ConnExtension, reqs <-chan *ssh.Request) {
	for req := range reqs {
		if ext != nil && ext.Request(req) {
			continue
		}
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
	}
}

// Penalised reports whether connections from ip's source are refused for
// now, for failed or stalled logins: the share's UDP path refuses that
// source's handshakes too, before they cost a connection.
func (s *Server) Penalised(ip netip.Addr) bool {
	_, blocked := s.gate.Blocked(limits.SourceOf(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))), time.Now())
	return blocked
}

// ServeStream serves one SSH connection arriving over stream c instead of
// the listener: a relay to this share, where the member holding our
// reverse connection (host key fingerprint holder) opened a channel over
// it for another member (client key fingerprint clientKey, as the holder
// says; "" when it does not), who must log in and sees this share's host
// key end to end. It gets the same limits, login and confinement as an
// inbound connection, counted against that member as introduced by the
// holder (limits.MemberSource), not against the holder's address: the
// holder only carries the bytes. It returns when the connection ends.
func (s *Server) ServeStream(c net.Conn, holder, clientKey string) error {
	src := limits.MemberSource(holder, clientKey)
	if holder == "" {
		src = limits.SourceOf(c.RemoteAddr())
	}
	st, err := s.gate.Admit(src, nil, time.Now())
	return s.serveAdmitted(c, src, st, err)
}

// ServeMemberStream serves one SSH connection arriving over stream c from
// a source address that a live member's advert names (the UDP path knows
// its members' public addresses): like ServeStream with no holder, but
// before login it counts against the members' own budget
// (limits.Gate.AdmitMember), so that strangers holding every pre-login
// slot do not keep members out. It returns when the connection ends.
func (s *Server) ServeMemberStream(c net.Conn) error {
	src := limits.SourceOf(c.RemoteAddr())
	st, err := s.gate.AdmitMember(src, time.Now())
	return s.serveAdmitted(c, src, st, err)
}

// serveAdmitted serves c once the gate decided about it (err: refused).
func (s *Server) serveAdmitted(c net.Conn, src limits.Source, st *limits.Startup, err error) error {
	if err != nil {
		c.Close()
		s.logRefused(src, c.RemoteAddr(), err)
		return fmt.Errorf("share: %w", err)
	}
	if !s.track(c) {
		st.Leave()
		c.Close()
		return errors.New("share: shutting down")
	}
	s.wg.Add(1)
	s.handleConn(c, st)
	return nil
}
