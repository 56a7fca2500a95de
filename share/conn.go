package share

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// handleConn runs one TCP connection: SSH handshake and login within
// LoginGrace, then its SSH channels. Each connection has its own goroutine
// and the login path takes no server-wide lock, so failing logins elsewhere
// never hold up this one.
func (s *Server) handleConn(c net.Conn) {
	defer s.wg.Done()
	defer s.untrack(c)
	defer c.Close()
	start := time.Now()
	log := s.log.With("remote", c.RemoteAddr().String())
	defer func() {
		if v := recover(); v != nil {
			log.Error("connection handler panicked; closing connection", "panic", fmt.Sprint(v))
		}
	}()

	select {
	case s.startups <- struct{}{}:
	default:
		log.Warn("connection refused: too many connections logging in at once", "max_startups", s.opts.MaxStartups)
		return
	}
	inStartup := true
	leaveStartup := func() {
		if inStartup {
			<-s.startups
			inStartup = false
		}
	}
	defer leaveStartup()

	_ = c.SetDeadline(time.Now().Add(s.opts.LoginGrace))
	pc := newPacketConn(c)
	if s.testHookPacketConn != nil {
		s.testHookPacketConn(pc)
	}
	sconn, chans, reqs, err := ssh.NewServerConn(pc, s.connConfig())
	if err != nil {
		log.Info("connection closed without login", "err", err, "duration", time.Since(start).Round(time.Millisecond))
		return
	}
	defer sconn.Close()
	_ = c.SetDeadline(time.Time{})
	leaveStartup()

	log = log.With("user", sconn.User(), "who", sconn.Permissions.Extensions[extWho])
	if fp := sconn.Permissions.Extensions[extKeyFP]; fp != "" {
		log = log.With("key", fp)
	}
	if n := s.conns.Add(1); n > int64(s.opts.MaxConns) {
		s.conns.Add(-1)
		log.Warn("connection refused: too many connections", "max_conns", s.opts.MaxConns)
		return
	}
	defer s.conns.Add(-1)
	log.Info("connection opened")

	go ssh.DiscardRequests(reqs) // no port forwarding, no keepalive replies needed

	var (
		handles  atomic.Int64 // open handles of all sessions of this connection
		sessions atomic.Int64
		swg      sync.WaitGroup
	)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			// Only SFTP: no port forwarding, no agent, no X11.
			_ = nc.Reject(ssh.Prohibited, "only sftp sessions are served")
			continue
		}
		if sessions.Add(1) > int64(s.opts.MaxSessionsPerConn) {
			sessions.Add(-1)
			_ = nc.Reject(ssh.ResourceShortage, "too many sessions on this connection")
			continue
		}
		swg.Add(1)
		go func() {
			defer swg.Done()
			defer sessions.Add(-1)
			s.session(log, nc, &handles)
		}()
	}
	swg.Wait()
	log.Info("connection closed", "duration", time.Since(start).Round(time.Millisecond))
}

// session serves one "session" channel. The only request granted is the
// "sftp" subsystem; shells, commands, ptys and env are refused.
func (s *Server) session(log *slog.Logger, nc ssh.NewChannel, handles *atomic.Int64) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var closeOnce sync.Once
	closeCh := func() { closeOnce.Do(func() { ch.Close() }) }
	done := make(chan struct{})
	started := false
	for req := range reqs {
		ok := false
		if req.Type == "subsystem" && !started {
			var p struct{ Name string }
			if ssh.Unmarshal(req.Payload, &p) == nil && p.Name == "sftp" {
				ok, started = true, true
				go func() {
					defer close(done)
					s.serveSFTP(log, ch, handles, closeCh)
					// Tell the client the subsystem ended, then close.
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
					closeCh()
				}()
			}
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	closeCh()
	if started {
		<-done
	}
}

// serveSFTP runs the read-only SFTP request server on rwc until the client
// closes it. A panic in a handler is recovered there (it ends this session
// only); one in the server's own read loop is recovered here.
func (s *Server) serveSFTP(log *slog.Logger, rwc io.ReadWriteCloser, handles *atomic.Int64, closeSession func()) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("sftp session panicked; closing session", "panic", fmt.Sprint(v))
			closeSession()
		}
	}()
	h := newFSHandlers(s.view, s.secrets, handles, s.opts.MaxHandlesPerConn, log, closeSession)
	h.testHookRead = s.testHookRead
	// The allocator reuses the 256 KiB buffers of requests and READ
	// replies once a reply is sent: without it every READ allocates a fresh
	// buffer, and the garbage, page faults and GC cost about a third of the
	// server's CPU on a bulk read.
	rs := sftp.NewRequestServer(rwc, h.handlers(), sftp.WithRSMaxTxPacket(maxReadData), sftp.WithRSAllocator())
	err := rs.Serve()
	rs.Close()
	if err != nil && err != io.EOF {
		log.Debug("sftp session ended", "err", err)
	}
}
