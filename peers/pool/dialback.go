package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share/sshstream"
	"golang.org/x/crypto/ssh"
)

// Dial-back check (REACHABILITY.md): a member whose router reports
// a mapping cannot tell from inside whether it works (hairpin NAT may
// hide a broken one, or fake a working one). It asks other members to
// dial its advertised addresses, and believes an address works when such
// a dial arrives at its own share with the nonce it gave for it.

// dialBackTimeout bounds the checker's dials, and is when it replies;
// the share bounds the whole check at 5 s (share.DialBackTimeout).
const dialBackTimeout = 4 * time.Second

// dialBackAsk is how many members are asked, and dialBackTries how many
// are tried at most to find them.
const (
	dialBackAsk   = 2
	dialBackTries = 4
)

var errNotChecked = errors.New("the member did not check (an older dsftp, or it refused)")

// DialBack dials the distinct addresses among addrs for the member that
// logs in with the key whose fingerprint is clientKey, and returns those
// that answered with that member's host key. Only addresses the member
// advertises are dialed, so a member can make others dial nothing that
// anyone mounting it would not dial anyway; dialBackLimits bounds how
// often. At an address with another host key the SSH handshake stops
// right after it; at the member's, the dial sends the address's nonce
// (nonces[i] for addrs[i]) as the user name of one "none" attempt, which
// its share takes as proof of arrival, not as a failed login. It returns
// dialBackTimeout after it began whatever the dials met, so that a
// closed, a filtered and an open port look alike to the member.
func (r *Routes) DialBack(clientKey string, addrs, nonces []string) ([]string, error) {
	id, ok := r.members.ClientKeyMember(clientKey)
	if !ok {
		return nil, errors.New("dial-back checks are only for members with a live advert")
	}
	e, ok := r.members.ByID(id)
	if !ok || e.ClientOnly || e.HostKey == nil {
		return nil, fmt.Errorf("%s shares nothing to check", id)
	}
	for _, a := range addrs {
		if !slices.Contains(e.Addrs, a) {
			return nil, fmt.Errorf("%s is not an address %s advertises", a, e.DisplayName)
		}
	}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(dialBackTimeout))
	defer cancel()
	targets := resolveDistinct(ctx, addrs, nonces)
	to := make([]netip.AddrPort, len(targets))
	for i, t := range targets {
		to[i] = t.to
	}
	if err := r.dialBack.take(id, to, start); err != nil {
		return nil, err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		reached []string
	)
	for _, t := range targets {
		wg.Go(func() {
			if answersWith(ctx, t.to, e.HostKey, t.nonce) {
				mu.Lock()
				reached = append(reached, t.addr)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-ctx.Done()
	slices.Sort(reached)
	return reached, nil
}

// dialTarget is one address of a dial-back check, resolved.
type dialTarget struct {
	addr  string // as advertised
	to    netip.AddrPort
	nonce string
}

// resolveDistinct resolves addrs and keeps the first of those that lead
// to the same IP and port: an advert that lists one address several
// times, or spells it several ways, gets it dialed once. An address that
// does not resolve is not dialed.
func resolveDistinct(ctx context.Context, addrs, nonces []string) []dialTarget {
	var out []dialTarget
	for i, a := range addrs {
		to, err := resolveAddr(ctx, a)
		if err != nil || slices.ContainsFunc(out, func(t dialTarget) bool { return t.to == to }) {
			continue
		}
		t := dialTarget{addr: a, to: to}
		if i < len(nonces) {
			t.nonce = nonces[i]
		}
		out = append(out, t)
	}
	return out
}

// resolveAddr turns host:port into the IP and port to dial.
func resolveAddr(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil || p <= 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve port of %s: %w", hostport, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, lerr)
		}
		ip = ips[0]
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("%s is not an address to dial", hostport)
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

var errKeyChecked = errors.New("host key checked")

// answersWith reports whether an SSH server with host key want answers
// at addr; there, and only there, it sends nonce (if any) as the user
// name of a "none" login attempt, the one attempt it makes.
func answersWith(ctx context.Context, addr netip.AddrPort, want ssh.PublicKey, nonce string) bool {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return false
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	algos := []string{want.Type()}
	if want.Type() == ssh.KeyAlgoRSA {
		algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	var matched atomic.Bool
	cfg := &ssh.ClientConfig{
		User: sshstream.DialBackUser + nonce, ClientVersion: "SSH-2.0-dsftp", HostKeyAlgorithms: algos,
		Config: ssh.Config{Ciphers: ciphers},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if !bytes.Equal(k.Marshal(), want.Marshal()) {
				return errors.New("another host key")
			}
			matched.Store(true)
			if nonce == "" {
				return errKeyChecked
			}
			return nil
		},
	}
	// No auth methods: after "none" is refused the handshake ends.
	_, _, _, _ = ssh.NewClientConn(nc, addr.String(), cfg)
	return matched.Load()
}

// DialBack asks peer's share to dial addrs (ours, as advertised) back,
// over a connection of the pool, and returns those at which the nonce we
// gave it arrived at our own share: what the peer replies is only
// logged, so a member that lies can at worst withhold the answer. An
// error means the peer did not check (it refused, or is an older dsftp).
func (p *Pool) DialBack(ctx context.Context, peer peers.Peer, addrs []string) ([]string, error) {
	r := p.opts.Routes
	if r == nil {
		return nil, errors.New("dial-back check: no share of ours to see the dial arrive")
	}
	g, err := p.group(peer)
	if err != nil {
		return nil, err
	}
	c, err := g.acquire(ctx, peer)
	if err != nil {
		return nil, err
	}
	nonces, err := r.nonces.issue(len(addrs), time.Now())
	if err != nil {
		g.release(c, nil)
		return nil, err
	}
	type answer struct {
		ok      bool
		payload []byte
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		ok, payload, err := c.ssh.SendRequest(sshstream.RequestDialBack, true, ssh.Marshal(sshstream.DialBackRequest{
			Addrs: strings.Join(addrs, "\n"), Nonces: strings.Join(nonces, "\n")}))
		done <- answer{ok, payload, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = ctx.Err()
	case <-time.After(2 * dialBackTimeout):
		a.err = ErrTimeout
	}
	g.release(c, nil)
	var reached []string
	for i, ok := range r.nonces.take(nonces) {
		if ok {
			reached = append(reached, addrs[i])
		}
	}
	var reply sshstream.DialBackReply
	if a.err == nil && (!a.ok || ssh.Unmarshal(a.payload, &reply) != nil) {
		a.err = errNotChecked
	}
	if a.err != nil && len(reached) == 0 {
		return nil, fmt.Errorf("dial-back check by %s: %w", peerLabel(peer), a.err)
	}
	for _, claimed := range strings.Fields(reply.Reached) {
		if !slices.Contains(reached, claimed) {
			p.log.Info("a member says it reached our address, but its dial did not arrive at our share; not believed",
				"peer", peerLabel(peer), "addr", claimed)
		}
	}
	return reached, nil
}

// CheckReachable asks up to two other members, in random order, to dial
// addrs back. It returns the addresses at which a dial of theirs arrived
// at our share (DialBack), and how many members checked (zero: nobody
// could be asked, the answer is unknown).
func (p *Pool) CheckReachable(ctx context.Context, members []peers.Entry, self string, addrs []string) (reached []string, checked int) {
	var cands []peers.Entry
	for _, e := range members {
		if !e.ClientOnly && e.ID != self && e.HostKey != nil {
			cands = append(cands, e)
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	cands = cands[:min(len(cands), dialBackTries)]
	// dialBackAsk asks run at once, and a member that cannot be asked is
	// replaced at once: behind a NAT that drops the dial, each answer
	// waits out the checker's timeout, and one after the other those
	// waits would add up.
	type answer struct {
		e   peers.Entry
		got []string
		err error
	}
	answers := make(chan answer, len(cands))
	running := 0
	ask := func() {
		e := cands[0]
		cands = cands[1:]
		running++
		go func() {
			got, err := p.DialBack(ctx, e.Peer, addrs)
			answers <- answer{e, got, err}
		}()
	}
	for running < dialBackAsk && len(cands) > 0 {
		ask()
	}
	for running > 0 {
		a := <-answers
		running--
		if a.err != nil {
			p.log.Debug("dial-back check not done", "peer", a.e.DisplayName, "err", a.err)
			if checked+running < dialBackAsk && len(cands) > 0 {
				ask()
			}
			continue
		}
		checked++
		p.log.Debug("dial-back check", "peer", a.e.DisplayName, "reached", strings.Join(a.got, " "))
		for _, r := range a.got {
			if slices.Contains(addrs, r) && !slices.Contains(reached, r) {
				reached = append(reached, r)
			}
		}
	}
	slices.Sort(reached)
	return reached, checked
}
