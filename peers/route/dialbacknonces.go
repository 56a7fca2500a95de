package route

import (
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"time"
)

// Nonces of our own dial-back checks: a member that checks our address
// and meets our host key there sends the address's nonce to our share
// (DialBackUser), and only a nonce that arrived makes us
// believe the address works; what the member replies does not. Each
// nonce is issued for one address of one check, counts once, and is
// forgotten when the check ends or nonceLife after it was issued.
const (
	nonceLife = 2*dialBackTimeout + 2*time.Second
	maxNonces = 256
)

type nonceState struct {
	expires time.Time
	arrived bool
}

type nonceTable struct {
	mu sync.Mutex
	m  map[string]*nonceState
}

// issue returns n fresh nonces.
func (t *nonceTable) issue(n int, now time.Time) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*nonceState{}
	}
	if len(t.m)+n > maxNonces {
		for k, s := range t.m {
			if now.After(s.expires) {
				delete(t.m, k)
			}
		}
	}
	if len(t.m)+n > maxNonces {
		return nil, errors.New("too many dial-back checks of ours at once")
	}
	out := make([]string, n)
	for i := range out {
		out[i] = rand.Text()
		t.m[out[i]] = &nonceState{expires: now.Add(nonceLife)}
	}
	return out, nil
}

// arrive notes that nonce arrived at our share; false when it is not one
// of ours, expired, or already arrived.
func (t *nonceTable) arrive(nonce string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[nonce]
	if s == nil || s.arrived || now.After(s.expires) {
		return false
	}
	s.arrived = true
	return true
}

// take forgets nonces and reports which of them arrived.
func (t *nonceTable) take(nonces []string) []bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]bool, len(nonces))
	for i, n := range nonces {
		if s := t.m[n]; s != nil {
			out[i] = s.arrived
			delete(t.m, n)
		}
	}
	return out
}

// DialBackArrived reports whether user, the user name of a connection to
// our share that tries no login but "none", is a dial-back check of ours
// arriving (DialBackUser and a nonce we issued and are still waiting for),
// and notes that it arrived; a nonce counts once. The share's Probe.
func (t *Table) DialBackArrived(user string) bool {
	nonce, ok := strings.CutPrefix(user, DialBackUser)
	if !ok || nonce == "" || !t.nonces.arrive(nonce, time.Now()) {
		return false
	}
	t.log.Info("a member's dial-back check arrived")
	return true
}
