package route

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/dsftp/dsftp/peers"
	"golang.org/x/crypto/ssh"
)

// dialBackAsk is how many members are asked, and dialBackTries how many
// are tried at most to find them.
const (
	dialBackAsk   = 2
	dialBackTries = 4
)

var errNotChecked = errors.New("the member did not check (an older dsftp, or it refused)")

// Requester sends a global request to a member's share over a connection
// of ours, its host key checked, waiting at most until ctx ends. The
// session pool has it.
type Requester interface {
	SendRequest(ctx context.Context, peer peers.Peer, name string, payload []byte) (ok bool, reply []byte, err error)
}

// DialBack asks peer's share to dial addrs (ours, as advertised) back,
// over a connection of via, and returns those at which the nonce we gave
// it arrived at our own share (DialBackArrived): what the peer replies is
// only logged, so a member that lies can at worst withhold the answer. An
// error means the peer did not check (it refused, or is an older dsftp).
func (t *Table) DialBack(ctx context.Context, via Requester, peer peers.Peer, addrs []string) ([]string, error) {
	nonces, err := t.nonces.issue(len(addrs), time.Now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*dialBackTimeout)
	defer cancel()
	ok, payload, err := via.SendRequest(ctx, peer, RequestDialBack, ssh.Marshal(DialBackRequest{
		Addrs: strings.Join(addrs, "\n"), Nonces: strings.Join(nonces, "\n")}))
	var reached []string
	for i, arrived := range t.nonces.take(nonces) {
		if arrived {
			reached = append(reached, addrs[i])
		}
	}
	var reply DialBackReply
	if err == nil && (!ok || ssh.Unmarshal(payload, &reply) != nil) {
		err = errNotChecked
	}
	if err != nil && len(reached) == 0 {
		return nil, fmt.Errorf("dial-back check by %s: %w", peerLabel(peer), err)
	}
	for _, claimed := range strings.Fields(reply.Reached) {
		if !slices.Contains(reached, claimed) {
			t.log.Info("a member says it reached our address, but its dial did not arrive at our share; not believed",
				"peer", peerLabel(peer), "addr", claimed)
		}
	}
	return reached, nil
}

// peerLabel names a peer in messages: its name, or its ID.
func peerLabel(p peers.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// CheckReachable asks up to two other members, in random order, to dial
// addrs back, over connections of via. It returns the addresses at which
// a dial of theirs arrived at our share (DialBack), and how many members
// checked (zero: nobody could be asked, the answer is unknown).
func (t *Table) CheckReachable(ctx context.Context, via Requester, members []peers.Entry, self string, addrs []string) (reached []string, checked int) {
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
			got, err := t.DialBack(ctx, via, e.Peer, addrs)
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
			t.log.Debug("dial-back check not done", "peer", a.e.DisplayName, "err", a.err)
			if checked+running < dialBackAsk && len(cands) > 0 {
				ask()
			}
			continue
		}
		checked++
		t.log.Debug("dial-back check", "peer", a.e.DisplayName, "reached", strings.Join(a.got, " "))
		for _, r := range a.got {
			if slices.Contains(addrs, r) && !slices.Contains(reached, r) {
				reached = append(reached, r)
			}
		}
	}
	slices.Sort(reached)
	return reached, checked
}
