package share

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/dsftp/dsftp/share/sshstream"
	"golang.org/x/crypto/ssh"
)

// Routes lets members without a reachable address use this share's
// connections: a member that dialed in may offer its own share back over
// its connection (reverse), and a member may ask for a pipe to such a
// share (relay). cmd wires it to the pool's route table; share does not
// import peers. Offer and Relay decide who may do what.
type Routes interface {
	// Offer is called when the logged-in client whose key has fingerprint
	// clientKey offers its share, host key fingerprint hostKey, over its
	// connection conn: the holder may open sshstream.ChannelSFTP channels
	// on conn for its own reads, and sshstream.ChannelShare channels (a
	// complete SSH connection to that share) for relays. It returns what to
	// call when the connection ends, or an error to refuse.
	Offer(clientKey, hostKey string, conn ssh.Conn) (release func(), err error)
	// Relay returns a stream to the share with host key fingerprint
	// target, for the logged-in client whose key has fingerprint
	// clientKey, or an error to refuse.
	Relay(clientKey, target string) (net.Conn, error)
	// DialBack dials addrs for the logged-in client whose key has
	// fingerprint clientKey and returns those that answered with that
	// member's host key, or an error to refuse (not a member, an address
	// it does not advertise). It returns within DialBackTimeout.
	DialBack(clientKey string, addrs []string) (reached []string, err error)
	// Live reports whether the member with host key fingerprint hostKey
	// has a live advert: a connection holding its reverse connection is
	// kept while it has, however long it carries nothing.
	Live(hostKey string) bool
}

// Dial-back limits: a member may have its addresses checked at most
// every dialBackEvery on one connection, at most MaxDialBackAddrs at a
// time, each dial bounded by DialBackTimeout.
const (
	MaxDialBackAddrs = 4
	DialBackTimeout  = 5 * time.Second
	dialBackEvery    = 10 * time.Second
)

// globalRequests answers a logged-in connection's global requests: only
// a reverse offer is granted, and only with Routes and a key login;
// reverse is called with the offered share's host key fingerprint when
// one is.
func (s *Server) globalRequests(log *slog.Logger, sconn *ssh.ServerConn, clientKey string, reqs <-chan *ssh.Request, reverse func(hostKey string)) {
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	var lastDialBack time.Time
	for req := range reqs {
		if req.Type == sshstream.RequestDialBack {
			// Answered in line: replies to global requests go in order.
			ok, reply := s.dialBack(log, clientKey, req.Payload, &lastDialBack)
			if req.WantReply {
				_ = req.Reply(ok, reply)
			}
			continue
		}
		ok := false
		if req.Type == sshstream.RequestReverse && s.opts.Routes != nil && clientKey != "" && len(releases) == 0 {
			var p sshstream.ReverseRequest
			if err := ssh.Unmarshal(req.Payload, &p); err == nil {
				release, err := s.opts.Routes.Offer(clientKey, p.HostKey, sconn)
				if err == nil {
					ok = true
					reverse(p.HostKey)
					releases = append(releases, release)
					log.Info("holding a reverse connection", "peer_host_key", p.HostKey)
				} else {
					log.Info("refused a reverse connection", "peer_host_key", p.HostKey, "err", err)
				}
			}
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
}

// dialBack checks a member's advertised addresses for it (Routes.DialBack)
// and returns the reply payload; false when refused or too soon after
// the last check on this connection.
func (s *Server) dialBack(log *slog.Logger, clientKey string, payload []byte, last *time.Time) (bool, []byte) {
	var p sshstream.DialBackRequest
	if s.opts.Routes == nil || clientKey == "" || ssh.Unmarshal(payload, &p) != nil {
		return false, nil
	}
	if time.Since(*last) < dialBackEvery {
		log.Info("refused a dial-back check", "err", "another one on this connection less than 10s ago")
		return false, nil
	}
	addrs := strings.Fields(p.Addrs)
	if len(addrs) == 0 || len(addrs) > MaxDialBackAddrs {
		log.Info("refused a dial-back check", "addrs", len(addrs), "err", "want 1 to 4 addresses")
		return false, nil
	}
	*last = time.Now()
	reached, err := s.opts.Routes.DialBack(clientKey, addrs)
	if err != nil {
		log.Info("refused a dial-back check", "err", err)
		return false, nil
	}
	log.Info("dial-back check", "addrs", strings.Join(addrs, " "), "reached", strings.Join(reached, " "))
	return true, ssh.Marshal(sshstream.DialBackReply{Reached: strings.Join(reached, "\n")})
}

// ServeStream serves one SSH connection arriving over stream c instead of
// the listener: a relay to this share, where the member holding our
// reverse connection (host key fingerprint holder) opened a channel over
// it for another member (client key fingerprint clientKey, as the holder
// says; "" when it does not), who must log in and sees this share's host
// key end to end. It gets the same limits, login and confinement as an
// inbound connection, counted against that member as introduced by the
// holder (memberSource), not against the holder's address: the holder only
// carries the bytes. It returns when the connection ends.
func (s *Server) ServeStream(c net.Conn, holder, clientKey string) error {
	src := memberSource(holder, clientKey)
	if holder == "" {
		src = sourceOf(c.RemoteAddr())
	}
	if reason := s.gate.admit(src, time.Now()); reason != "" {
		c.Close()
		s.logRefused(src, c.RemoteAddr(), reason)
		return errors.New("share: " + reason)
	}
	if !s.track(c) {
		s.gate.leaveStartup(src)
		c.Close()
		return errors.New("share: shutting down")
	}
	s.wg.Add(1)
	s.handleConn(c, src)
	return nil
}
