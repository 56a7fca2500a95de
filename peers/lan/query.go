package lan

import (
	"bytes"
	"context"
	"net"
	"time"
)

// Query is the datagram a listener (`dsftp peers`) sends to ask the live
// members to announce now instead of at their next interval. It is not an
// advert: it carries nothing to verify, so it is matched byte for byte,
// and releases older than it drop it unread (it lacks Prefix).
const Query = "dsftp-query/1"

// QueryRetry is when a querying listener asks a second time, in case the
// first query or an answer was lost.
const QueryRetry = 500 * time.Millisecond

// Answers to queries are bounded apart from the advert limits: a query
// costs nothing to forge, and each answer is a broadcast. Per source one
// a second (burst two), in total queryRate a second; triggered
// announcements coalesce within MinGap on top of that.
const (
	queryRate          = 5
	queryRatePerSource = 1
)

// IsQuery reports whether a datagram is a query.
func IsQuery(msg []byte) bool { return bytes.Equal(msg, []byte(Query)) }

// handleQuery answers a query heard from from with an announcement, which
// goes to the usual broadcast and multicast targets: a unicast answer to a
// port several processes share would reach only one of them. Listeners
// have no advert and never answer.
func (d *Discovery) handleQuery(from *net.UDPAddr) {
	d.stats.queries.Add(1)
	if d.opts.ListenOnly {
		return
	}
	if !d.queryLimiter.allow(from.IP.String()) {
		d.stats.rateLimited.Add(1)
		d.log.Debug("LAN queries arrive too fast; not answering some", "from", from.String())
		return
	}
	d.stats.answered.Add(1)
	d.log.Debug("answering a LAN query", "from", from.String())
	d.Announce()
}

// query asks the members to announce: at once, and again after
// QueryRetry unless ctx ends first.
func (d *Discovery) query(ctx context.Context) {
	d.sendRaw([]byte(Query), "query")
	t := time.NewTimer(QueryRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		d.sendRaw([]byte(Query), "query")
	}
}
