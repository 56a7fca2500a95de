package route

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// ServerOptions configure the serving side of the routes.
type ServerOptions struct {
	// NoRelay refuses relay requests (--no-relay).
	NoRelay bool
	// RelayRate caps the bytes per second relayed, both directions of
	// all relays together, shared equally between the members relaying
	// at the time; zero means DefaultRelayRate, negative no cap.
	RelayRate int64
}

// setDefaults fills the fields left zero with their defaults.
func (o *ServerOptions) setDefaults() {
	if o.RelayRate == 0 {
		o.RelayRate = DefaultRelayRate
	}
}

// Server serves the routes on the share's logged-in connections: reverse
// offers (RequestReverse), dial-back checks (RequestDialBack) and relays
// (ChannelRelay). The share hands it what it does not serve itself, one
// connection at a time (Conn). Its relay budget spans all connections.
type Server struct {
	table  *Table
	opts   ServerOptions
	relays *relayBudget
}

// NewServer serves the routes of t.
func NewServer(t *Table, o ServerOptions) *Server {
	o.setDefaults()
	return &Server{table: t, opts: o, relays: newRelayBudget(o.RelayRate)}
}

// ConnInfo is a logged-in connection to the share, with what the routes
// need of the share for it.
type ConnInfo struct {
	// ClientKey is the fingerprint of the key it logged in with; "" for
	// a password login, which gets no route.
	ClientKey string
	// Conn is the SSH connection.
	Conn ssh.Conn
	// Log is the connection's logger (rate-limited by the share).
	Log *slog.Logger
	// Busy keeps the connection from being closed as idle until the
	// function it returns is called.
	Busy func() (done func())
	// HoldReverse makes the connection one that carries a reverse
	// connection from the member with host key fingerprint hostKey: it
	// is read in bulk, and kept, however long it carries nothing, while
	// live reports true; once false the share closes it.
	HoldReverse func(hostKey string, live func() bool)
}

// ConnHandler serves the routes of one connection.
type ConnHandler struct {
	s      *Server
	c      ConnInfo
	relays atomic.Int64 // relay channels open (changed under relayBudget.mu)
	wg     sync.WaitGroup

	mu      sync.Mutex
	release func() // of the reverse offer held, if any
	closed  bool
}

// Conn starts serving the routes of c; call Close when it ends.
func (s *Server) Conn(c ConnInfo) *ConnHandler {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return &ConnHandler{s: s, c: c}
}

// Request answers req if it is a route's global request, and reports
// whether it was one. Replies to global requests go in order, so it
// answers before it returns.
func (h *ConnHandler) Request(req *ssh.Request) bool {
	var ok bool
	var reply []byte
	switch req.Type {
	case RequestDialBack:
		ok, reply = h.dialBack(req.Payload)
	case RequestReverse:
		ok = h.offer(req.Payload)
	default:
		return false
	}
	if req.WantReply {
		_ = req.Reply(ok, reply)
	}
	return true
}

// Channel serves nc if it is a route's channel (a relay), in the
// background, and reports whether it was one.
func (h *ConnHandler) Channel(nc ssh.NewChannel) bool {
	if nc.ChannelType() != ChannelRelay {
		return false
	}
	h.wg.Go(func() { h.relay(nc) })
	return true
}

// Close waits for the connection's relays to end and gives up the
// reverse connection it offered, if any.
func (h *ConnHandler) Close() {
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.release != nil {
		h.release()
		h.release = nil
	}
}

// offer takes a reverse offer: one per connection, and only with a key
// login of the member that owns the host key offered.
func (h *ConnHandler) offer(payload []byte) bool {
	var p ReverseRequest
	if h.c.ClientKey == "" || ssh.Unmarshal(payload, &p) != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.release != nil || h.closed {
		return false
	}
	release, err := h.s.table.Offer(h.c.ClientKey, p.HostKey, h.c.Conn)
	if err != nil {
		h.c.Log.Info("refused a reverse connection", "peer_host_key", p.HostKey, "err", err)
		return false
	}
	h.release = release
	if h.c.HoldReverse != nil {
		h.c.HoldReverse(p.HostKey, func() bool { return h.s.table.Live(p.HostKey) })
	}
	h.c.Log.Info("holding a reverse connection", "peer_host_key", p.HostKey)
	return true
}

// dialBack checks a member's advertised addresses for it and returns the
// reply payload; false when refused. How often a member may ask is the
// table's to decide: it knows the member behind the key.
func (h *ConnHandler) dialBack(payload []byte) (bool, []byte) {
	if h.c.ClientKey == "" {
		return false, nil
	}
	log := h.c.Log
	addrs, nonces, err := parseDialBack(payload)
	if err != nil {
		log.Info("refused a dial-back check", "err", err)
		return false, nil
	}
	reached, err := h.s.table.checkFor(h.c.ClientKey, addrs, nonces)
	if err != nil {
		log.Info("refused a dial-back check", "addrs", strings.Join(addrs, " "), "err", err)
		return false, nil
	}
	log.Info("dial-back check", "addrs", strings.Join(addrs, " "), "reached", strings.Join(reached, " "))
	return true, ssh.Marshal(DialBackReply{Reached: strings.Join(reached, "\n")})
}
