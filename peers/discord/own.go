package discord

import (
	"sync/atomic"

	"github.com/bwmarrin/discordgo"

	"github.com/dsftp/dsftp/peers/advert"
)

// ownState is what the receiver knows of our own adverts.
type ownState struct {
	postedSeq atomic.Uint64 // sequence number of our current advert
}

// posted records that the advert with sequence number seq is ours now.
func (r *receiver) posted(seq uint64) { r.own.postedSeq.Store(seq) }

// ownLocked handles an advert signed with our own host key. Ours to
// delete (our bot posted it) are those of an earlier run, valid or
// expired (a run killed before deleting its advert, restarted later),
// and those of this run older than the current one (a post the server
// stored although it answered with an error, then posted again). So the
// channel holds one advert of ours. Adverts another bot posted with our
// key are not ours to delete (bots have no Manage Messages).
func (r *receiver) ownLocked(m *discordgo.Message, d *advert.Decoded, author string) {
	if author != r.t.botID || r.deleteStale == nil || r.stale[m.ID] {
		return
	}
	earlier := d.Instance != r.instance
	older := d.Instance == r.instance && d.Seq < r.own.postedSeq.Load()
	if !earlier && !older {
		return
	}
	r.stale[m.ID] = true
	r.log.Debug("discord: deleting an earlier advert of ours", "message", m.ID, "earlier_run", earlier)
	r.deleteStale(m.ID)
}
