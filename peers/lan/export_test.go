package lan

// Stats count what happened to received packets, for the tests.
type Stats struct {
	Sent        uint64 // datagrams sent (one advert goes to several destinations)
	Received    uint64 // datagrams read
	Accepted    uint64 // verified adverts fed to the registry
	Own         uint64 // our own adverts heard back
	Duplicate   uint64 // the same advert heard again (several paths)
	Stale       uint64 // verified, but not newer than one already seen
	Malformed   uint64 // not an advert at all, or oversized
	Invalid     uint64 // looked like an advert but failed verification
	RateLimited uint64 // dropped by the receive rate limit
	Foreign     uint64 // arrived on an interface not in Options.Interfaces
	Capped      uint64 // a new peer beyond MaxPeers or MaxPeersPerSource
	Queries     uint64 // queries heard (see Query)
	Answered    uint64 // queries answered with an announcement
}

// Stats returns a snapshot of the counters.
func (d *Discovery) Stats() Stats {
	c := &d.stats
	return Stats{
		Sent: c.sent.Load(), Received: c.received.Load(), Accepted: c.accepted.Load(),
		Own: c.own.Load(), Duplicate: c.duplicate.Load(), Stale: c.stale.Load(),
		Malformed: c.malformed.Load(), Invalid: c.invalid.Load(),
		RateLimited: c.rateLimited.Load(), Foreign: c.foreign.Load(),
		Capped: c.capped.Load(), Queries: c.queries.Load(), Answered: c.answered.Load(),
	}
}
