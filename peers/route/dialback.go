package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Dial-back check (README.md): a member whose router reports
// a mapping cannot tell from inside whether it works (hairpin NAT may
// hide a broken one, or fake a working one). It asks other members to
// dial its advertised addresses, and believes an address works when such
// a dial arrives at its own share with the nonce it gave for it.

// Dial-back limits: at most MaxDialBackAddrs addresses in one check,
// nonces of at most maxDialBackNonce bytes; the checker's dials take
// dialBackTimeout, and it replies then, well within DialBackTimeout, the
// bound on the whole check as the member asking waits for it.
const (
	MaxDialBackAddrs = 4
	DialBackTimeout  = 5 * time.Second
	dialBackTimeout  = 4 * time.Second
	maxDialBackNonce = 64
)

// checkFor dials the distinct addresses among addrs for the member that
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
func (t *Table) checkFor(clientKey string, addrs, nonces []string) ([]string, error) {
	id, ok := t.members.ClientKeyMember(clientKey)
	if !ok {
		return nil, errors.New("dial-back checks are only for members with a live advert")
	}
	e, ok := t.members.ByID(id)
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
	if err := t.dialBack.take(id, to, start); err != nil {
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
		User: DialBackUser + nonce, ClientVersion: "SSH-2.0-dsftp", HostKeyAlgorithms: algos,
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

// ciphers are the pool's: AES-GCM, which Go runs fastest.
var ciphers = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}

// parseDialBack reads a dial-back request, with a nonce per address or
// none at all.
func parseDialBack(payload []byte) (addrs, nonces []string, err error) {
	var p DialBackRequest
	if ssh.Unmarshal(payload, &p) != nil {
		var a DialBackAddrs
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
