package lan

import "time"

// peerCount tracks the peers accepted from the LAN, by source address,
// so that a flood of validly signed adverts from fresh keys fills at most
// MaxPeersPerSource slots per address and MaxPeers in total instead of
// the registry (and every mount's root). Known peers are always
// refreshed; only newcomers are turned away. The name book counts the
// new names it remembers by the same source (Peer.Origin "lan:IP", see
// peers.MaxNewNamesPerOrigin), a few a day of the MaxPeersPerSource
// live ones.
type peerCount struct {
	max, perSource int
	peers          map[string]knownPeer // by peer ID
	bySource       map[string]int
	nextPrune      time.Time
	loggedSource   map[string]bool // sources already warned about
	loggedTotal    bool
}

type knownPeer struct {
	source  string
	expires time.Time
}

type capVerdict int

const (
	capOK     capVerdict = iota
	capSource            // over the per-source cap: warn (first time for this source)
	capTotal             // over the total cap: warn (first time)
	capSilent            // over a cap, already warned
)

func newPeerCount(max, perSource int) peerCount {
	return peerCount{max: max, perSource: perSource,
		peers: map[string]knownPeer{}, bySource: map[string]int{}, loggedSource: map[string]bool{}}
}

// admit decides on an advert of id from source, valid until expires.
func (c *peerCount) admit(id, source string, expires, now time.Time) capVerdict {
	if k, ok := c.peers[id]; ok && k.expires.After(now) && k.source == source {
		c.peers[id] = knownPeer{source, expires}
		return capOK
	}
	if c.bySource[source] >= c.perSource || len(c.peers) >= c.max {
		c.prune(now)
	}
	// A known peer that moved to another address counts there now.
	if k, ok := c.peers[id]; ok {
		c.drop(id, k)
	}
	if c.bySource[source] >= c.perSource {
		if c.loggedSource[source] {
			return capSilent
		}
		if len(c.loggedSource) >= 1024 {
			clear(c.loggedSource) // many sources: bound the memory, warn again
		}
		c.loggedSource[source] = true
		return capSource
	}
	if len(c.peers) >= c.max {
		if c.loggedTotal {
			return capSilent
		}
		c.loggedTotal = true
		return capTotal
	}
	c.peers[id] = knownPeer{source, expires}
	c.bySource[source]++
	if len(c.peers) < c.max*9/10 {
		c.loggedTotal = false // the next flood is worth a warning again
	}
	return capOK
}

func (c *peerCount) drop(id string, k knownPeer) {
	delete(c.peers, id)
	if c.bySource[k.source]--; c.bySource[k.source] <= 0 {
		delete(c.bySource, k.source)
	}
}

// prune forgets expired peers, at most every 100 ms: at the cap, a flood
// of newcomers costs one scan per interval, not one per advert.
func (c *peerCount) prune(now time.Time) {
	if now.Before(c.nextPrune) {
		return
	}
	c.nextPrune = now.Add(100 * time.Millisecond)
	for id, k := range c.peers {
		if !k.expires.After(now) {
			c.drop(id, k)
		}
	}
}
