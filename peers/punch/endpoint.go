package punch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// KeepAlive is how often a path in use and the STUN mapping are refreshed:
// below the 30 s after which common home routers (and Linux conntrack)
// forget an idle UDP mapping.
const KeepAlive = 25 * time.Second

// Config shapes an Endpoint; zero fields take the defaults named.
type Config struct {
	// ID names this member to peers (its host key fingerprint). An
	// endpoint with an ID refuses handshakes addressed to another ID.
	ID string
	// MaxHandshakes bounds incoming handshakes in progress (64), and
	// MaxHandshakesPerSource those from one source (4): an IPv4
	// address or an IPv6 /64.
	MaxHandshakes          int
	MaxHandshakesPerSource int
	// MaxConns bounds live incoming QUIC connections, handshaking ones
	// included (64), and MaxConnsPerSource those from one source (8).
	MaxConns          int
	MaxConnsPerSource int
	// Member tells whether a source (see [Source]) is a live member's:
	// one of its advertised UDP candidates is there. Strangers, the other
	// sources, get
	// at most MaxStrangerHandshakes (32) of the handshakes and
	// MaxStrangerConns (32) of the connections, so that the rest stays
	// free for members. Nil: every source counts as a member.
	Member                func(netip.Addr) bool
	MaxStrangerHandshakes int
	MaxStrangerConns      int
	// Refuse tells whether a source is refused for now (the share
	// penalises it for failed or stalled logins): its handshakes are
	// refused before they cost a connection. Nil: none is.
	Refuse func(netip.Addr) bool
	// MaxStreams bounds the streams a peer may have open on one
	// connection (16); each is one SSH connection.
	MaxStreams int
	// HandshakeTimeout ends a handshake that stalls this long (10 s);
	// one that goes on takes at most twice as long (quic-go's limit).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that hears nothing this long (75 s:
	// three keep-alives lost).
	IdleTimeout time.Duration
	// StreamWindow and ConnWindow cap the receive buffers of a stream (4
	// MiB) and of a connection (8 MiB).
	StreamWindow int
	ConnWindow   int
	// Logger receives the endpoint's events; nil means slog.Default().
	Logger *slog.Logger
	// Relayed says the socket is a TURN relay (ListenRelay): every packet
	// also carries TURN's framing, so QUIC packets stay at quic-go's first
	// size (1280 bytes) instead of probing for a larger path MTU that the
	// framing would push past the link's.
	Relayed bool

	// stunTimeout is STUNTimeout; tests shorten it to see a server stay
	// silent without waiting 5 s.
	stunTimeout time.Duration
}

// withDefaults returns c with the fields left zero (or negative) set to
// the defaults named above.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxHandshakes, 64)
	def(&c.MaxHandshakesPerSource, 4)
	def(&c.MaxConns, 64)
	def(&c.MaxConnsPerSource, 8)
	def(&c.MaxStrangerHandshakes, max(1, c.MaxHandshakes/2))
	def(&c.MaxStrangerConns, max(1, c.MaxConns/2))
	def(&c.MaxStreams, 16)
	def(&c.StreamWindow, 4<<20)
	def(&c.ConnWindow, 8<<20)
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 3 * KeepAlive
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.stunTimeout <= 0 {
		c.stunTimeout = STUNTimeout
	}
	return c
}

// Endpoint is QUIC on one UDP socket: it accepts connections, dials,
// punches and asks STUN servers, all from the same local port, so that a
// NAT mapping made by one serves the others.
type Endpoint struct {
	cfg       Config
	log       *slog.Logger
	pc        net.PacketConn
	tr        *quic.Transport
	ln        *quic.Listener
	serverCfg *quic.Config
	dialCfg   *quic.Config
	lim       *limiter

	ctx     context.Context
	cancel  context.CancelFunc
	streams chan net.Conn
	wg      sync.WaitGroup

	mu      sync.Mutex
	waiters map[*punchWait]struct{}
	stun    map[[12]byte]*stunWait
}

// Listen opens the UDP socket at addr ("0.0.0.0:2200", ":0") and starts
// accepting QUIC connections on it.
func Listen(addr string, cfg Config) (*Endpoint, error) {
	cfg = cfg.withDefaults()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve UDP listen address %q: %w", addr, err)
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen on UDP %s: %w", addr, err)
	}
	return serve(uc, cfg)
}

// serve runs the endpoint on pc, which it closes with the endpoint (or
// on error).
func serve(uc net.PacketConn, cfg Config) (*Endpoint, error) {
	srvTLS, err := serverTLS(cfg.ID)
	if err != nil {
		uc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg: cfg, log: cfg.Logger.With("udp", uc.LocalAddr().String()), pc: uc, lim: newLimiter(cfg),
		ctx: ctx, cancel: cancel, streams: make(chan net.Conn),
		waiters: map[*punchWait]struct{}{}, stun: map[[12]byte]*stunWait{},
	}
	e.serverCfg = e.quicConfig(0)
	// Only the dialer keeps a path alive: it is the side that wants it.
	e.dialCfg = e.quicConfig(KeepAlive)
	e.tr = &quic.Transport{
		Conn: uc,
		// Retry for every source: a handshake costs this side memory only
		// once the source has shown that it receives at its address.
		VerifySourceAddress: func(net.Addr) bool { return true },
		ConnContext: func(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
			return e.lim.connContext(ctx, info.RemoteAddr, info.AddrVerified)
		},
	}
	e.ln, err = e.tr.Listen(srvTLS, e.serverCfg)
	if err != nil {
		cancel()
		e.tr.Close()
		uc.Close()
		return nil, fmt.Errorf("listen for QUIC on %s: %w", uc.LocalAddr(), err)
	}
	e.wg.Add(2)
	go e.acceptConns()
	go e.readNonQUIC()
	return e, nil
}

func (e *Endpoint) quicConfig(keepAlive time.Duration) *quic.Config {
	return &quic.Config{
		DisablePathMTUDiscovery:        e.cfg.Relayed,
		HandshakeIdleTimeout:           e.cfg.HandshakeTimeout,
		MaxIdleTimeout:                 e.cfg.IdleTimeout,
		KeepAlivePeriod:                keepAlive,
		MaxIncomingStreams:             int64(e.cfg.MaxStreams),
		MaxIncomingUniStreams:          -1,
		InitialStreamReceiveWindow:     uint64(min(512<<10, e.cfg.StreamWindow)),
		MaxStreamReceiveWindow:         uint64(e.cfg.StreamWindow),
		InitialConnectionReceiveWindow: uint64(min(768<<10, e.cfg.ConnWindow)),
		MaxConnectionReceiveWindow:     uint64(e.cfg.ConnWindow),
	}
}

// Addr is the local address of the socket.
func (e *Endpoint) Addr() netip.AddrPort { return addrPort(e.pc.LocalAddr()) }

// Stats reports the incoming connections' counts.
func (e *Endpoint) Stats() Stats { return e.lim.stats() }

// Accept returns the next stream a peer opened, on any connection, as a
// net.Conn carrying one SSH connection (share.ServeStream serves it).
func (e *Endpoint) Accept(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-e.streams:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close closes every connection and the socket.
func (e *Endpoint) Close() error {
	e.cancel()
	e.ln.Close()
	err := e.tr.Close()
	e.pc.Close()
	e.wg.Wait()
	if err != nil {
		return fmt.Errorf("close QUIC transport: %w", err)
	}
	return nil
}

// acceptConns takes the connections whose handshake completed: a punch
// waiting for the peer gets its own, and every connection's streams are
// served.
func (e *Endpoint) acceptConns() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept(e.ctx)
		if err != nil {
			return
		}
		if s := slotOf(c); s != nil {
			s.established(c)
		}
		e.offer(c)
		e.serveStreams(c)
	}
}

// serveStreams hands the streams the peer opens on c to Accept, for as
// long as c lives.
func (e *Endpoint) serveStreams(c *quic.Conn) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			s, err := c.AcceptStream(e.ctx)
			if err != nil {
				return
			}
			sc := newStreamConn(s, c)
			select {
			case e.streams <- sc:
			case <-e.ctx.Done():
				sc.Close()
				return
			case <-c.Context().Done():
				sc.Close()
				return
			}
		}
	}()
}

// dial opens a QUIC connection to addr, addressed to peer, from the socket.
func (e *Endpoint) dial(ctx context.Context, addr netip.AddrPort, peer string) (*quic.Conn, error) {
	c, err := e.tr.Dial(ctx, net.UDPAddrFromAddrPort(addr), clientTLS(e.cfg.ID, peer), e.dialCfg)
	if err != nil {
		return nil, fmt.Errorf("QUIC handshake with %s: %w", addr, err)
	}
	e.serveStreams(c)
	return c, nil
}

// Dial opens a path to the member peer (its ID) at addr, without punching:
// for an address that accepts connections (a mapped port, a LAN address).
func (e *Endpoint) Dial(ctx context.Context, addr netip.AddrPort, peer string) (*Path, error) {
	c, err := e.dial(ctx, addr, peer)
	if err != nil {
		return nil, err
	}
	return &Path{conn: c, Dialed: true}, nil
}

// errClosed tells a caller the endpoint is gone.
var errClosed = errors.New("QUIC endpoint closed")
