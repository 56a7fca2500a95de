package punch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// TURNTimeout bounds one server's allocation, retransmissions included.
const TURNTimeout = 10 * time.Second

// Relay is a TURN allocation (pion/turn) with a QUIC endpoint on its
// relayed address: it accepts, dials and punches like the share's own
// endpoint, with the same limits, Retry and server-name check, and every
// stream carries one SSH connection. The TURN server forwards only
// packets from the addresses this side has sent to (TURN permissions,
// by IP), so punching a peer's candidates through it is what lets that
// peer's dial to the relayed address in. pion refreshes the allocation,
// the permissions and the channel bindings; Lost tells when a refresh of
// the allocation failed.
type Relay struct {
	*Endpoint
	// Server is the server that granted the allocation.
	Server TURNServer

	client *turn.Client
	sock   *net.UDPConn
	lost   chan struct{}
	once   sync.Once
}

// ListenRelay allocates a relayed address on the first of servers that
// grants one, each within TURNTimeout, and runs an endpoint on it. The
// error says, for every server, why it did not (without the credentials).
func ListenRelay(ctx context.Context, servers []TURNServer, cfg Config) (*Relay, error) {
	var errs []string
	for _, s := range servers {
		r, err := allocate(ctx, s, cfg)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no TURN server configured")
	}
	return nil, fmt.Errorf("no TURN relay: %s", strings.Join(errs, "; "))
}

// allocate asks one server for a relayed UDP address, from a socket of
// its own (the TURN server knows this member by it; the share's socket
// stays for STUN and punching).
func allocate(ctx context.Context, s TURNServer, cfg Config) (*Relay, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, TURNTimeout)
	defer cancel()
	server, err := resolveTURN(ctx, s)
	if err != nil {
		return nil, err
	}
	sock, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: open a UDP socket: %w", s, err)
	}
	r := &Relay{Server: s, sock: sock, lost: make(chan struct{})}
	log := cfg.Logger.With("turn", s.String())
	r.client, err = turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: server.String(),
		Username:       s.user,
		Password:       s.pass,
		Conn:           sock,
		LoggerFactory:  pionLogs{log: log, lost: r.markLost},
	})
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("%s: start the TURN client: %w", s, err)
	}
	if err := r.client.Listen(); err != nil {
		r.client.Close()
		sock.Close()
		return nil, fmt.Errorf("%s: start the TURN client: %w", s, err)
	}
	type result struct {
		pc  net.PacketConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		pc, err := r.client.Allocate()
		done <- result{pc, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// Closing the client ends the transaction in flight.
		r.client.Close()
		sock.Close()
		<-done
		return nil, fmt.Errorf("%s did not answer within %v", s, TURNTimeout)
	}
	if res.err != nil {
		r.client.Close()
		sock.Close()
		return nil, allocError(s, res.err)
	}
	cfg.Relayed = true
	cfg.Logger = log
	r.Endpoint, err = serve(relayedConn{PacketConn: res.pc, sock: sock}, cfg)
	if err != nil {
		r.client.Close()
		sock.Close()
		return nil, err
	}
	log.Info("allocated a TURN relay", "relayed", r.Addr())
	return r, nil
}

// relayedConn is the relay's PacketConn with the buffer sizes of the
// socket under it, where the relayed packets arrive: quic-go sizes them
// as for its own sockets.
type relayedConn struct {
	net.PacketConn
	sock *net.UDPConn
}

func (c relayedConn) SetReadBuffer(n int) error  { return c.sock.SetReadBuffer(n) }
func (c relayedConn) SetWriteBuffer(n int) error { return c.sock.SetWriteBuffer(n) }

// resolveTURN finds the server's IPv4 address (pion's client speaks IPv4).
func resolveTURN(ctx context.Context, s TURNServer) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s.Host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s: %w", s, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s: no IPv4 address for %s (%v)", s, host, err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ips[0].Unmap().String(), port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s: %w", s, err)
	}
	return ap, nil
}

// allocError says why a server granted no allocation, and what to check.
func allocError(s TURNServer, err error) error {
	var te *stun.TurnError
	if errors.As(err, &te) {
		switch te.ErrorCodeAttr.Code {
		case stun.CodeUnauthorized:
			return fmt.Errorf("%s refused the user name or password (TURN error 401): check the USER:PASS of --turn", s)
		case stun.CodeAllocQuotaReached, stun.CodeInsufficientCapacity:
			return fmt.Errorf("%s has no allocation to spare (%s): try later or another server", s, te.ErrorCodeAttr)
		}
		return fmt.Errorf("%s refused the allocation: %s", s, te.ErrorCodeAttr)
	}
	if strings.Contains(err.Error(), "retransmissions failed") {
		return fmt.Errorf("%s did not answer (is it running, and is UDP port %s open to this host?)", s, portOf(s.Host))
	}
	return fmt.Errorf("%s: allocate: %w", s, err)
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// Lost is closed when pion failed to refresh the allocation: the relayed
// address is gone (the server restarted or forgot it), and a new one is
// needed.
func (r *Relay) Lost() <-chan struct{} { return r.lost }

func (r *Relay) markLost() { r.once.Do(func() { close(r.lost) }) }

// Close closes the endpoint, releases the allocation and the socket.
func (r *Relay) Close() error {
	err := r.Endpoint.Close()
	r.client.Close()
	r.sock.Close()
	return err
}

// pionLogs hands pion's log lines to slog at debug level, and notices the
// one that says the allocation is gone: pion has no callback for it.
type pionLogs struct {
	log  *slog.Logger
	lost func()
}

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log.With("pion", scope), lost: p.lost}
}

type pionLogger struct {
	log  *slog.Logger
	lost func()
}

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(m string)        { l.log.Debug(m) }
func (l pionLogger) Debugf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
func (l pionLogger) Info(m string)             { l.log.Debug(m) }
func (l pionLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Warn(m string)             { l.note(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.note(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(m string)            { l.note(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.note(fmt.Sprintf(f, a...)) }

func (l pionLogger) note(m string) {
	l.log.Debug(m)
	if strings.HasPrefix(m, "Failed to refresh allocation") {
		l.lost()
	}
}
