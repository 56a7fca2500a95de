package discord

import (
	"slices"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/dsftp/dsftp/peers/advert"
)

// confirmDelay is how long after a history read that lacked a peer's
// advert the next read confirms it: long enough for the poster's prompt
// retries (postAttempts) to have replaced an advert the server announced
// but failed to store.
const confirmDelay = 15 * time.Second

// judgeMissingLocked decides about the live peers whose advert this
// history read (all, begun at start) lacks. A peer leaves at once when
// its advert is deleted (deleted, from the gateway); absence from history
// alone is not enough, since a server can announce a message it then
// fails to store. So a peer whose advert is missing keeps (or falls back
// to) another valid advert of it still in the channel, else it leaves
// only when the next read, confirmDelay later, lacks it too.
func (r *receiver) judgeMissingLocked(all []*discordgo.Message, seen map[string]bool, start, now time.Time) {
	pending := false
	for fp, st := range r.known {
		if !st.live {
			continue
		}
		if seen[st.msgID] {
			st.missing = 0
			continue
		}
		// Only messages older than this read can be judged missing; a
		// newer one came over the gateway after the read began.
		if ts, err := discordgo.SnowflakeTimestamp(st.msgID); err != nil || !ts.Before(start.Add(-time.Second)) {
			continue
		}
		if alt := r.presentLocked(fp, all, now); alt != "" {
			r.log.Debug("discord: advert gone from history; another advert of the peer is there", "peer", fp, "message", st.msgID, "now", alt)
			st.msgID, st.info.MessageID, st.missing = alt, alt, 0
			continue
		}
		st.missing++
		if st.missing >= 2 || r.confirm == nil {
			r.log.Debug("discord: advert gone from history", "peer", fp, "message", st.msgID)
			r.dropLocked(fp, st)
			continue
		}
		r.log.Debug("discord: advert missing from history; the next read decides", "peer", fp, "message", st.msgID, "in", r.confirmIn)
		pending = true
	}
	if pending {
		r.confirm()
	}
}

// presentLocked returns the ID of the newest valid advert of fp among
// msgs, or "".
func (r *receiver) presentLocked(fp string, msgs []*discordgo.Message, now time.Time) string {
	best, bestSeq, bestIssued := "", uint64(0), int64(0)
	for _, m := range msgs {
		if m == nil || !strings.HasPrefix(m.Content, "dsftp/") {
			continue
		}
		d, err := advert.Decode(m.Content)
		if err != nil || d.Fingerprint != fp || d.Check(r.t.guildID, r.t.channelID, now) != nil {
			continue
		}
		if len(r.allow) > 0 && (m.Author == nil || !slices.Contains(r.allow, m.Author.ID)) {
			continue
		}
		if d.Issued > bestIssued || (d.Issued == bestIssued && d.Seq > bestSeq) {
			best, bestSeq, bestIssued = m.ID, d.Seq, d.Issued
		}
	}
	return best
}
