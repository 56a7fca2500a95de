package share

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
	// fingerprint clientKey, sends each address that answers with that
	// member's host key its nonce (nonces[i] for addrs[i]; none when
	// nonces is empty), and returns those addresses, or an error to
	// refuse (not a member, an address it does not advertise, too soon).
	// It returns within DialBackTimeout.
	DialBack(clientKey string, addrs, nonces []string) (reached []string, err error)
	// DialBackArrived reports whether nonce is one this member issued for
	// a dial-back check of its own that is still running, and notes that
	// it arrived; a nonce counts once.
	DialBackArrived(nonce string) bool
	// Live reports whether the member with host key fingerprint hostKey
	// has a live advert: a connection holding its reverse connection is
	// kept while it has, however long it carries nothing.
	Live(hostKey string) bool
}

// Dial-back limits: at most MaxDialBackAddrs addresses in one check,
// nonces of at most maxDialBackNonce bytes, the whole check bounded by
// DialBackTimeout.
const (
	MaxDialBackAddrs = 4
	DialBackTimeout  = 5 * time.Second
	maxDialBackNonce = 64
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
	for req := range reqs {
		if req.Type == sshstream.RequestDialBack {
			// Answered in line: replies to global requests go in order.
			ok, reply := s.dialBack(log, clientKey, req.Payload)
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
// and returns the reply payload; false when refused. How often a member
// may ask is the Routes' to decide: it knows the member behind the key.
func (s *Server) dialBack(log *slog.Logger, clientKey string, payload []byte) (bool, []byte) {
	if s.opts.Routes == nil || clientKey == "" {
		return false, nil
	}
	addrs, nonces, err := parseDialBack(payload)
	if err != nil {
		log.Info("refused a dial-back check", "err", err)
		return false, nil
	}
	reached, err := s.opts.Routes.DialBack(clientKey, addrs, nonces)
	if err != nil {
		log.Info("refused a dial-back check", "addrs", strings.Join(addrs, " "), "err", err)
		return false, nil
	}
	log.Info("dial-back check", "addrs", strings.Join(addrs, " "), "reached", strings.Join(reached, " "))
	return true, ssh.Marshal(sshstream.DialBackReply{Reached: strings.Join(reached, "\n")})
}

// parseDialBack reads a dial-back request, with a nonce per address or
// none at all.
func parseDialBack(payload []byte) (addrs, nonces []string, err error) {
	var p sshstream.DialBackRequest
	if ssh.Unmarshal(payload, &p) != nil {
		var a sshstream.DialBackAddrs
		if err := ssh.Unmarshal(payload, &a); err != nil {
			return nil, nil, fmt.Errorf("read the request: %w", err)
		}
		p.Addrs = a.Addrs
	}
	addrs, nonces = strings.Fields(p.Addrs), strings.Fields(p.Nonces)
	switch {
	case len(addrs) == 0 || len(addrs) > MaxDialBackAddrs:
		return nil, nil, fmt.Errorf("%d addresses: want 1 to %d", len(addrs), MaxDialBackAddrs)
	case len(nonces) != 0 && len(nonces) != len(addrs):
		return nil, nil, fmt.Errorf("%d nonces for %d addresses", len(nonces), len(addrs))
	case slices.ContainsFunc(nonces, func(n string) bool { return len(n) > maxDialBackNonce }):
		return nil, nil, fmt.Errorf("a nonce longer than %d bytes", maxDialBackNonce)
	}
	return addrs, nonces, nil
}

// dialBackArrived reports whether user is the user name of a dial-back
// check this share's member asked for and is still waiting for
// (sshstream.DialBackUser and a nonce of ours).
func (s *Server) dialBackArrived(user string) bool {
	nonce, ok := strings.CutPrefix(user, sshstream.DialBackUser)
	return ok && nonce != "" && s.opts.Routes != nil && s.opts.Routes.DialBackArrived(nonce)
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
	s.handleConn(c, &startup{src: src})
	return nil
}
