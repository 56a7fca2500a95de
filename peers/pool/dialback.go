package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share/sshstream"
	"golang.org/x/crypto/ssh"
)

// Dial-back check (REACHABILITY.md): a member whose router reports
// a mapping cannot tell from inside whether it works (hairpin NAT may
// hide a broken one, or fake a working one). It asks other members to
// dial its advertised addresses and report which answered with its host
// key.

// dialBackTimeout bounds the checker's dials; the share bounds the whole
// check at 5 s (share.DialBackTimeout).
const dialBackTimeout = 4 * time.Second

// dialBackAsk is how many members are asked, and dialBackTries how many
// are tried at most to find them.
const (
	dialBackAsk   = 2
	dialBackTries = 4
)

var errNotChecked = errors.New("the member did not check (an older dsftp, or it refused)")

// DialBack dials addrs for the member that logs in with the key whose
// fingerprint is clientKey, and returns those that answered with that
// member's host key. Only addresses the member advertises are dialed, so
// a member can make others dial nothing that anyone mounting it would not
// dial anyway. The SSH handshake stops right after the host key.
func (r *Routes) DialBack(clientKey string, addrs []string) ([]string, error) {
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
	ctx, cancel := context.WithTimeout(context.Background(), dialBackTimeout)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		reached []string
	)
	for _, a := range addrs {
		wg.Go(func() {
			if answersWith(ctx, a, e.HostKey) {
				mu.Lock()
				reached = append(reached, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(reached)
	return reached, nil
}

var errKeyChecked = errors.New("host key checked")

// answersWith reports whether an SSH server with host key want answers
// at addr.
func answersWith(ctx context.Context, addr string, want ssh.PublicKey) bool {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
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
	cfg := &ssh.ClientConfig{
		User: "dsftp-dialback", ClientVersion: "SSH-2.0-dsftp", HostKeyAlgorithms: algos,
		Config: ssh.Config{Ciphers: ciphers},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if bytes.Equal(k.Marshal(), want.Marshal()) {
				return errKeyChecked
			}
			return errors.New("another host key")
		},
	}
	_, _, _, err = ssh.NewClientConn(nc, addr, cfg)
	return errors.Is(err, errKeyChecked)
}

// DialBack asks peer's share to dial addrs (ours, as advertised) and say
// which answered with our host key, over a connection of the pool.
func (p *Pool) DialBack(ctx context.Context, peer peers.Peer, addrs []string) ([]string, error) {
	g, err := p.group(peer)
	if err != nil {
		return nil, err
	}
	c, err := g.acquire(ctx, peer)
	if err != nil {
		return nil, err
	}
	type answer struct {
		ok      bool
		payload []byte
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		ok, payload, err := c.ssh.SendRequest(sshstream.RequestDialBack, true,
			ssh.Marshal(sshstream.DialBackRequest{Addrs: strings.Join(addrs, "\n")}))
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
	if a.err != nil {
		return nil, fmt.Errorf("dial-back check by %s: %w", peerLabel(peer), a.err)
	}
	var r sshstream.DialBackReply
	if !a.ok || ssh.Unmarshal(a.payload, &r) != nil {
		return nil, fmt.Errorf("dial-back check by %s: %w", peerLabel(peer), errNotChecked)
	}
	return strings.Fields(r.Reached), nil
}

// CheckReachable asks up to two other members, in random order, to dial
// addrs back. It returns the addresses any of them reached, and how many
// members checked (zero: nobody could be asked, the answer is unknown).
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
