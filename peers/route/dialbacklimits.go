package route

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Limits of the dial-back checks this share does for others, so that no
// member can aim its dials at anyone (README.md): a member, by its
// ID whatever its connections or client keys, gets one check per
// dialBackMemberEvery; an address, by the IP and port dialed however the
// advert spells it, is dialed at most once per dialBackAddrEvery whoever
// asks. Each table holds at most dialBackTableMax entries; a check that
// needs more is refused.
const (
	dialBackMemberEvery = 10 * time.Second
	dialBackAddrEvery   = time.Minute
	dialBackTableMax    = 1024
)

type dialBackLimits struct {
	mu      sync.Mutex
	members map[string]time.Time         // member ID -> its last check
	addrs   map[netip.AddrPort]time.Time // address -> its last dial
}

// take books a check by member of addrs at now, or says why it may not
// be done.
func (l *dialBackLimits) take(member string, addrs []netip.AddrPort, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.members == nil {
		l.members, l.addrs = map[string]time.Time{}, map[netip.AddrPort]time.Time{}
	}
	if t, ok := l.members[member]; ok && now.Sub(t) < dialBackMemberEvery {
		return fmt.Errorf("this member's last check was less than %v ago", dialBackMemberEvery)
	}
	for _, a := range addrs {
		if t, ok := l.addrs[a]; ok && now.Sub(t) < dialBackAddrEvery {
			return fmt.Errorf("%v was dialed back less than %v ago", a, dialBackAddrEvery)
		}
	}
	if len(l.members) >= dialBackTableMax {
		forgetBefore(l.members, now.Add(-dialBackMemberEvery))
	}
	if len(l.addrs)+len(addrs) > dialBackTableMax {
		forgetBefore(l.addrs, now.Add(-dialBackAddrEvery))
	}
	if len(l.members) >= dialBackTableMax || len(l.addrs)+len(addrs) > dialBackTableMax {
		return errors.New("too many dial-back checks lately")
	}
	l.members[member] = now
	for _, a := range addrs {
		l.addrs[a] = now
	}
	return nil
}

// forgetBefore drops the entries of m older than cutoff.
func forgetBefore[K comparable](m map[K]time.Time, cutoff time.Time) {
	for k, t := range m {
		if t.Before(cutoff) {
			delete(m, k)
		}
	}
}
