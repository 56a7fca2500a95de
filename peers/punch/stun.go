package punch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"
)

// DefaultSTUN are the STUN servers asked when none are configured
// (--stun): Google's and Cloudflare's public servers. A server learns the
// endpoint's public UDP address and port, from the packet itself, and
// nothing else: the request carries no name, key or address of ours.
// Two operators, two addresses: a NAT that maps each destination to its
// own port (symmetric) shows as two different answers.
const DefaultSTUN = "stun.l.google.com:19302,stun.cloudflare.com:3478"

// STUNTimeout bounds one server's answer, retransmissions included.
const STUNTimeout = 5 * time.Second

// ParseSTUN turns the values of a repeatable --stun flag into the servers
// to ask: none given means DefaultSTUN, "none" alone turns STUN off (nil).
func ParseSTUN(values []string) ([]string, error) {
	if len(values) == 0 {
		return strings.Split(DefaultSTUN, ","), nil
	}
	if len(values) == 1 && values[0] == "none" {
		return nil, nil
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v == "none" {
			return nil, errors.New(`--stun none turns STUN off and cannot be combined with servers`)
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil || host == "" {
			return nil, fmt.Errorf("--stun %q: want HOST:PORT (e.g. stun.example.org:3478) or none", v)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("--stun %q: the port must be a number from 1 to 65535", v)
		}
		out = append(out, v)
	}
	return out, nil
}

// Mapping is one STUN server's answer: the endpoint's address as the
// server saw it.
type Mapping struct {
	Server string         // as configured
	Addr   netip.AddrPort // the server's address asked
	Public netip.AddrPort // our address as the server saw it
	Err    error
}

type stunAnswer struct {
	public netip.AddrPort
}

type stunWait struct {
	server netip.AddrPort
	ch     chan stunAnswer
}

// Discover asks every server, at once, for the socket's public address.
func (e *Endpoint) Discover(ctx context.Context, servers []string) []Mapping {
	out := make([]Mapping, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { out[i] = e.ask(ctx, s) })
	}
	wg.Wait()
	return out
}

// ask sends binding requests to one server until it answers or
// STUNTimeout (Config.stunTimeout) passes, retransmitting after 300 ms and then twice as long
// each time (RFC 8489 retransmits; UDP may lose the request).
func (e *Endpoint) ask(ctx context.Context, server string) Mapping {
	m := Mapping{Server: server}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.stunTimeout)
	defer cancel()
	addr, err := e.resolve(ctx, server)
	if err != nil {
		m.Err = err
		return m
	}
	m.Addr = addr
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		m.Err = fmt.Errorf("build STUN request: %w", err)
		return m
	}
	w := &stunWait{server: addr, ch: make(chan stunAnswer, 1)}
	e.mu.Lock()
	if len(e.stun) >= maxSTUNWaits {
		e.mu.Unlock()
		m.Err = errors.New("too many STUN requests in flight")
		return m
	}
	e.stun[req.TransactionID] = w
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.stun, req.TransactionID)
		e.mu.Unlock()
	}()
	ua := net.UDPAddrFromAddrPort(addr)
	wait := 300 * time.Millisecond
	for {
		if _, err := e.tr.WriteTo(req.Raw, ua); err != nil {
			m.Err = fmt.Errorf("send STUN request to %s: %w", server, err)
			return m
		}
		t := time.NewTimer(wait)
		select {
		case a := <-w.ch:
			t.Stop()
			m.Public = a.public
			return m
		case <-ctx.Done():
			t.Stop()
			m.Err = fmt.Errorf("STUN server %s (%s) did not answer within %v", server, addr, e.cfg.stunTimeout)
			return m
		case <-t.C:
			wait *= 2
		}
	}
}

// maxSTUNWaits bounds the requests in flight (a few servers, now and then).
const maxSTUNWaits = 64

// resolve finds the server's address in the socket's family, IPv4 first
// on a dual-stack socket: STUN is for the address a NAT puts on our
// packets, and a public IPv6 address goes into the adverts as it is. Were
// one server asked over IPv4 and another over IPv6, their answers would
// differ and the NAT would pass for symmetric. A server with no IPv4
// address (an IPv6-only network) is asked over IPv6.
func (e *Endpoint) resolve(ctx context.Context, server string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("STUN server %q: %w", server, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("STUN server %q: bad port", server)
	}
	networks := []string{"ip4", "ip6"}
	switch a := e.Addr().Addr(); {
	case a.Is4():
		networks = networks[:1]
	case !a.IsUnspecified():
		networks = networks[1:] // bound to one IPv6 address
	}
	var errs []error
	for _, network := range networks {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
		if err == nil && len(ips) > 0 {
			return netip.AddrPortFrom(ips[0].Unmap(), uint16(p)), nil
		}
		if err == nil {
			err = errors.New("no address")
		}
		errs = append(errs, fmt.Errorf("%s: %w", network, err))
	}
	return netip.AddrPort{}, fmt.Errorf("look up STUN server %s: %w", host, errors.Join(errs...))
}

// readNonQUIC takes the packets on the socket that are not QUIC (quic-go
// sets them aside, at most 32 queued) and gives STUN answers to the
// request waiting for them; anything else is dropped.
func (e *Endpoint) readNonQUIC() {
	defer e.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := e.tr.ReadNonQUICPacket(e.ctx, buf)
		if err != nil {
			return
		}
		txid, public, ok := parseBindingSuccess(buf[:n])
		if !ok {
			continue
		}
		e.mu.Lock()
		w := e.stun[txid]
		e.mu.Unlock()
		if w == nil || addrPort(from) != w.server {
			continue
		}
		select {
		case w.ch <- stunAnswer{public: public}:
		default:
		}
	}
}

// parseBindingSuccess reads a STUN binding success response with pion/stun:
// its transaction ID and the (XOR-)mapped address.
func parseBindingSuccess(b []byte) (txid [stun.TransactionIDSize]byte, public netip.AddrPort, ok bool) {
	if !stun.IsMessage(b) {
		return txid, public, false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
		return txid, public, false
	}
	var ip net.IP
	var port int
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err == nil {
		ip, port = xor.IP, xor.Port
	} else {
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(m); err != nil {
			return txid, public, false
		}
		ip, port = mapped.IP, mapped.Port
	}
	a, okIP := netip.AddrFromSlice(ip)
	if !okIP || port <= 0 || port > 65535 {
		return txid, public, false
	}
	return m.TransactionID, netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}
