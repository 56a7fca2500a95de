package share

import (
	"log/slog"
	"net"
	"sync"

	"github.com/dsftp/dsftp/share/limits"
	"golang.org/x/crypto/ssh"
)

// ServeReverse serves the SFTP sessions that the member holding a reverse
// connection of ours opens back over it (peers/route's ChannelSFTP). No SSH
// connection runs inside these channels, so bytes are encrypted once: the
// outer connection already authenticated both ends (we checked the
// holder's advertised host key when dialing it, it checked our login key
// against our advert), and the caller passes on only channels opened
// while the holder, host key fingerprint holder, has a live advert.
//
// A channel's open data is an SSH uint32 (reverseOpen); channels with the
// same number are the sessions of one connection, with the limits of a
// login: a logged-in slot counted against the holder's key, which is also
// its source rather than the address it dials from (MaxConns,
// MaxConnsPerKey, MaxConnsPerSource), MaxSessionsPerConn,
// MaxHandlesPerConn, MaxRequestsPerConn and IdleTimeout; and the same
// read-only, confined view. It returns once
// chans is closed (the outer connection ended) and its sessions are done.
func (s *Server) ServeReverse(remote net.Addr, holder string, chans <-chan ssh.NewChannel) {
	r := &reverseConns{s: s, remote: remote, src: limits.MemberSource(holder, ""), holder: holder, conns: map[uint32]*reverseConn{},
		log: s.log.With("remote", remote.String(), "route", "reverse", "peer_host_key", holder)}
	if !s.track(r) {
		for nc := range chans {
			_ = nc.Reject(ssh.ResourceShortage, "the share is shutting down")
		}
		return
	}
	defer s.untrack(r)
	for nc := range chans {
		r.open(nc)
	}
	_ = r.Close()
	r.wg.Wait()
}

// reverseOpen is the open data of a ServeReverse channel: the number of
// the connection it is a session of (peers/route's SFTPOpen).
type reverseOpen struct{ Conn uint32 }

// reverseConns are the connections (groups of SFTP channels) served over
// one reverse connection.
type reverseConns struct {
	s      *Server
	log    *slog.Logger
	remote net.Addr
	src    limits.Source
	holder string
	wg     sync.WaitGroup

	mu    sync.Mutex
	ended bool
	conns map[uint32]*reverseConn
}

// reverseConn is one connection's worth of SFTP channels.
type reverseConn struct {
	id       uint32
	flow     *connFlow
	sessions int // guarded by reverseConns.mu, as is flows
	flows    map[*sessionFlow]struct{}
	idleDone chan struct{}
}

// open serves nc as a session of the connection it names, starting that
// connection (and taking its logged-in slot) when it is new.
func (r *reverseConns) open(nc ssh.NewChannel) {
	var p reverseOpen
	if ssh.Unmarshal(nc.ExtraData(), &p) != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed sftp channel request")
		return
	}
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		_ = nc.Reject(ssh.ResourceShortage, "the share is shutting down")
		return
	}
	c := r.conns[p.Conn]
	if c == nil {
		if err := r.s.gate.Login(r.src, r.holder); err != nil {
			r.mu.Unlock()
			r.s.logRefused(r.src, r.remote, err)
			_ = nc.Reject(ssh.ResourceShortage, err.Error()+"; try again later")
			return
		}
		c = &reverseConn{id: p.Conn, flow: newConnFlow(r.s.gate.NewRequests()),
			flows: map[*sessionFlow]struct{}{}, idleDone: make(chan struct{})}
		r.conns[p.Conn] = c
		go r.s.closeWhenIdle(r.log, func() { r.closeConn(c) }, c.flow, c.idleDone)
		r.log.Info("reverse connection opened", "conn", p.Conn)
	}
	if c.sessions >= r.s.opts.MaxSessionsPerConn {
		r.mu.Unlock()
		_ = nc.Reject(ssh.ResourceShortage, "too many sessions on this connection")
		return
	}
	c.sessions++
	r.mu.Unlock()
	r.wg.Go(func() {
		r.s.sftpChannel(r.log, nc, c.flow, func(sf *sessionFlow, add bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if add {
				c.flows[sf] = struct{}{}
			} else {
				delete(c.flows, sf)
			}
		})
		r.sessionDone(c)
	})
}

// sessionDone ends c with its last session, as a login ends with its
// SSH connection.
func (r *reverseConns) sessionDone(c *reverseConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.sessions--; c.sessions > 0 {
		return
	}
	c.flow.gone.Store(true)
	close(c.idleDone)
	delete(r.conns, c.id)
	r.s.gate.Logout(r.src, r.holder)
	r.log.Info("reverse connection closed", "conn", c.id)
}

// closeConn closes c's sessions (idle, or the share shuts down).
func (r *reverseConns) closeConn(c *reverseConn) {
	c.flow.gone.Store(true)
	r.mu.Lock()
	var open []*sessionFlow
	for sf := range c.flows {
		open = append(open, sf)
	}
	r.mu.Unlock()
	for _, sf := range open {
		sf.Close()
	}
}

// Close refuses further channels and closes every session; for shutdown
// and the end of the outer connection.
func (r *reverseConns) Close() error {
	r.mu.Lock()
	r.ended = true
	var conns []*reverseConn
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		r.closeConn(c)
	}
	return nil
}

// sftpChannel serves SFTP on a channel that is an SFTP session by its
// type (no subsystem request), until either side closes it.
func (s *Server) sftpChannel(log *slog.Logger, nc ssh.NewChannel, flow *connFlow, register func(*sessionFlow, bool)) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	sf := newSessionFlow(ch, flow, log)
	register(sf, true)
	defer register(sf, false)
	if flow.gone.Load() {
		// The connection ended before this session was registered.
		sf.Close()
	}
	var closeOnce sync.Once
	closeCh := func() { closeOnce.Do(func() { sf.Close() }) }
	s.serveSFTP(log, sf, closeCh)
	closeCh()
}
