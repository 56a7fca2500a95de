package share

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// handleConn runs one TCP connection that Serve admitted (its pre-login
// slot is held): SSH handshake and login within VersionGrace and
// LoginGrace, then its SSH channels. Each connection has its own goroutine
// and the login path takes no lock for longer than a few map updates, so
// failing logins elsewhere never hold up this one.
func (s *Server) handleConn(c net.Conn, st *limits.Startup) {
	src := st.Source()
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
	inStartup, dropped := true, false
	leaveStartup := func() {
		if inStartup {
			dropped = st.Leave()
			inStartup = false
		}
	}
	defer leaveStartup()

	_ = c.SetDeadline(time.Now().Add(s.opts.LoginGrace))
	hc := &helloConn{Conn: c, st: st}
	// A connection that does not even send its version line is cut
	// early: it holds a pre-login slot and costs the attacker nothing.
	silent := time.AfterFunc(s.opts.VersionGrace, func() {
		if !hc.saw.Load() {
			hc.silent.Store(true)
			c.Close()
		}
	})
	pc := newPacketConn(hc)
	if s.testHookPacketConn != nil {
		s.testHookPacketConn(pc)
	}
	var auth authTally
	sconn, chans, reqs, err := ssh.NewServerConn(pc, s.connConfig(src, &auth))
	silent.Stop()
	if err != nil {
		leaveStartup()
		s.loginFailed(log, src, hc, &auth, err, time.Since(start), dropped)
		return
	}
	defer sconn.Close()
	_ = c.SetDeadline(time.Time{})
	leaveStartup()
	s.gate.Trust(src, time.Now())

	log = log.With("user", sconn.User(), "who", sconn.Permissions.Extensions[extWho])
	fp := sconn.Permissions.Extensions[extKeyFP]
	if fp != "" {
		log = log.With("key", fp)
	}
	if err := s.gate.Login(src, fp); err != nil {
		s.logRefused(src, c.RemoteAddr(), err)
		go ssh.DiscardRequests(reqs)
		rejectFirstChannel(chans, err.Error())
		return
	}
	defer s.gate.Logout(src, fp)
	log.Info("connection opened")

	flow := newConnFlow(s.gate.NewRequests())
	ext := s.extensions(log, sconn, fp, hc, flow)
	var rwg sync.WaitGroup
	rwg.Go(func() { globalRequests(ext, reqs) })

	idleDone := make(chan struct{})
	defer close(idleDone)
	go s.closeWhenIdle(log, func() { sconn.Close() }, flow, idleDone)

	s.serveChannels(log, chans, flow, ext)
	if ext != nil {
		rwg.Wait()
		ext.Close()
	}
	log.Info("connection closed", "duration", time.Since(start).Round(time.Millisecond))
}

// serveChannels serves the SFTP sessions a logged-in connection opens
// until it is gone, then stops them.
func (s *Server) serveChannels(log *slog.Logger, chans <-chan ssh.NewChannel, flow *connFlow, ext ConnExtension) {
	var (
		sessions atomic.Int64
		swg      sync.WaitGroup
		fmu      sync.Mutex
		flows    = map[*sessionFlow]struct{}{}
	)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			if ext != nil && ext.Channel(nc) {
				continue
			}
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
			s.session(log, nc, flow, func(sf *sessionFlow, add bool) {
				fmu.Lock()
				defer fmu.Unlock()
				if add {
					flows[sf] = struct{}{}
				} else {
					delete(flows, sf)
				}
			})
		}()
	}
	// The connection is gone: queued requests are skipped, and sessions
	// waiting for a request slot stop waiting.
	flow.gone.Store(true)
	fmu.Lock()
	for sf := range flows {
		sf.Close()
	}
	fmu.Unlock()
	swg.Wait()
}

// helloConn notes whether the client has sent its version line.
type helloConn struct {
	net.Conn
	saw    atomic.Bool     // a line has arrived
	silent atomic.Bool     // closed for sending none within VersionGrace
	bulk   atomic.Bool     // a reverse connection: data comes in bulk
	st     *limits.Startup // told when the version line arrives
	r      *bufio.Reader
	hello  []byte // the start of the version line, until it ends
	line   atomic.Pointer[string]
}

// maxHello bounds the version line kept (RFC 4253: 255 bytes).
const maxHello = 255

// version is the client's SSH version line, once it has arrived.
func (h *helloConn) version() string {
	if v := h.line.Load(); v != nil {
		return *v
	}
	return ""
}

// reverseReadBuf is the read buffer of a reverse connection, whose data
// (the member's files, read by us) arrives in bulk: the SSH transport
// reads each packet with two or three small reads, which one large
// buffer turns into about one read(2) per 64 KiB that has arrived. Other
// connections only send requests and get no buffer.
const reverseReadBuf = 256 << 10

func (h *helloConn) Read(p []byte) (int, error) {
	// Only the SSH transport's read loop calls Read, so h.r needs no lock.
	if h.r == nil && h.bulk.Load() {
		h.r = bufio.NewReaderSize(h.Conn, reverseReadBuf)
	}
	if h.r != nil {
		return h.r.Read(p)
	}
	n, err := h.Conn.Read(p)
	if n > 0 && !h.saw.Load() {
		i := bytes.IndexByte(p[:n], '\n')
		if i < 0 {
			h.hello = append(h.hello, p[:min(n, maxHello-len(h.hello))]...)
		} else {
			v := string(bytes.TrimRight(append(h.hello, p[:min(i, maxHello-len(h.hello))]...), "\r"))
			h.line.Store(&v)
			h.hello = nil
			h.saw.Store(true)
			h.st.Hello()
		}
	}
	return n, err
}

// authTally records what a connection tried while logging in, to decide
// its penalty if it fails.
type authTally struct {
	attempts int  // real attempts (not "none")
	failures int  // refused attempts
	password bool // a wrong password was among them
	probe    bool // an expected probe (Options.Probe)
}

// loginFailed logs a connection that ended without login and charges its
// source the penalty for how it failed.
func (s *Server) loginFailed(log *slog.Logger, src limits.Source, hc *helloConn, auth *authTally, err error, took time.Duration, dropped bool) {
	var why string
	var off limits.Offence // 0: none
	var ne net.Error
	switch {
	case dropped:
		// Not the source's fault: see limits.Startup.
		why = "silent connection dropped to make room for a newer one from the same address"
	case hc.silent.Load():
		why, off = fmt.Sprintf("no SSH version line within %v", s.opts.VersionGrace), limits.Silent
	case errors.As(err, &ne) && ne.Timeout():
		why, off = fmt.Sprintf("not logged in within %v", s.opts.LoginGrace), limits.LoginTimeout
	case auth.password:
		why, off = "wrong password", limits.AuthFailed
	case auth.failures >= s.opts.MaxAuthTries:
		why, off = "too many failed login attempts", limits.AuthFailed
	case auth.attempts == 0 && s.ownDial(hc):
		log.Debug("our own client reached our own share (a peer's address that is ours on this network): closed")
		return
	case auth.probe && auth.attempts == 0:
		// Expected (a member dialed us back because we asked): no
		// penalty.
		log.Debug("connection closed without login: an expected probe", "duration", took.Round(time.Millisecond))
		return
	case auth.attempts == 0:
		why, off = "closed before trying to log in", limits.NoLogin
	default:
		why = "login refused" // unknown keys: no penalty (see limits.Offence)
	}
	attrs := []any{"why", why, "err", err, "duration", took.Round(time.Millisecond)}
	var pen limits.Penalty
	if off != 0 {
		pen = s.gate.Penalise(src, off, time.Now())
	}
	if pen.Trusted {
		attrs = append(attrs, "penalty", "none: a login from this address succeeded recently")
	}
	log.Info("connection closed without login", attrs...)
	if pen.Blocked {
		log.Warn("address penalised: its new connections are refused for a while", "source", src.String(),
			"until", pen.Until.Format(time.RFC3339), "why", why)
	}
}

// ownDial reports whether hc is this process's own client: its version
// line, from an address of this machine (the line alone travels to every
// peer this process dials, so it proves nothing from elsewhere).
func (s *Server) ownDial(hc *helloConn) bool {
	if s.opts.SelfClientVersion == "" || hc.version() != s.opts.SelfClientVersion {
		return false
	}
	ap, err := netip.ParseAddrPort(hc.RemoteAddr().String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if local, ok := netip.AddrFromSlice(n.IP); ok && local.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// rejectFirstChannel tells a client that logged in but was over a
// connection limit why, in the reply to its first channel, instead of a
// bare disconnect; it waits briefly for that channel.
func rejectFirstChannel(chans <-chan ssh.NewChannel, reason string) {
	select {
	case nc, ok := <-chans:
		if ok {
			_ = nc.Reject(ssh.ResourceShortage, reason+"; try again later")
		}
	case <-time.After(2 * time.Second):
	}
}

// closeWhenIdle closes the connection once it has had no open handle, no
// request and nothing busy for IdleTimeout. A connection that carries a
// reverse connection is kept while its member lives instead
// (ConnInfo.HoldReverse): the member dialed it so that others can reach
// its share, which they may not do for a long time.
func (s *Server) closeWhenIdle(log *slog.Logger, closeConn func(), flow *connFlow, done <-chan struct{}) {
	if s.opts.IdleTimeout < 0 {
		return
	}
	every := min(max(s.opts.IdleTimeout/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if h := flow.hold.Load(); h != nil {
				if h.live() {
					continue
				}
				log.Info("closing a reverse connection: its member has no live advert", "peer_host_key", h.hostKey)
				closeConn()
				return
			}
			if flow.idleFor(now) >= s.opts.IdleTimeout {
				log.Info("closing idle connection", "idle_timeout", s.opts.IdleTimeout)
				closeConn()
				return
			}
		}
	}
}

// session serves one "session" channel. The only request granted is the
// "sftp" subsystem; shells, commands, ptys and env are refused.
func (s *Server) session(log *slog.Logger, nc ssh.NewChannel, flow *connFlow, register func(*sessionFlow, bool)) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	sf := newSessionFlow(ch, flow, log)
	register(sf, true)
	defer register(sf, false)
	if flow.gone.Load() {
		// The connection ended before this session was registered.
		sf.Close()
	}
	defer sf.Close()
	var closeOnce sync.Once
	closeCh := func() { closeOnce.Do(func() { sf.Close() }) }
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
					s.serveSFTP(log, sf, closeCh)
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
func (s *Server) serveSFTP(log *slog.Logger, sf *sessionFlow, closeSession func()) {
	defer sf.Release()
	defer func() {
		if v := recover(); v != nil {
			log.Error("sftp session panicked; closing session", "panic", fmt.Sprint(v))
			closeSession()
		}
	}()
	h := newFSHandlers(s.view, &sf.conn.handles, s.opts.MaxHandlesPerConn, log, closeSession)
	h.testHookRead = s.testHookRead
	// The allocator reuses the 256 KiB buffers of requests and READ
	// replies once a reply is sent: without it every READ allocates a fresh
	// buffer, and the garbage, page faults and GC cost about a third of the
	// server's CPU on a bulk read.
	hs := h.handlers()
	hs.FileGet = cancelFiles{hs.FileGet, sf}
	rs := sftp.NewRequestServer(sf, hs, sftp.WithRSMaxTxPacket(maxReadData), sftp.WithRSAllocator())
	err := rs.Serve()
	rs.Close()
	if err != nil && err != io.EOF {
		log.Debug("sftp session ended", "err", err)
	}
}
