package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
)

// maxHistoryPages bounds one history read (100 messages a page).
const maxHistoryPages = 50

// receiver turns channel messages into registry entries. It is fed by the
// gateway (hints) and by history reads (truth), from different goroutines.
type receiver struct {
	t       target
	reg     *peers.Registry
	log     *slog.Logger
	selfID  string
	allow   []string
	timeout time.Duration
	now     func() time.Time // Config.now
	// confirmIn is Config.confirmDelay, for the log.
	confirmIn time.Duration
	instance  string // own instance, if advertising

	// deleteStale, when set, is called with the message ID of an advert
	// with our host key from an earlier run, posted by our bot.
	deleteStale func(id string)

	mu    sync.Mutex
	known map[string]*peerState // by host key fingerprint
	// done maps message IDs to the content already handled, so history
	// re-reads skip signature checks for what they saw before.
	done  map[string]string
	stale map[string]bool // own stale messages already handled
	own   ownState
	// confirm, when set, asks for another history read soon: an advert
	// missing from one read is dropped only when the next confirms it
	// (missing.go).
	confirm func()
}

// peerState is what we remember per host key, also after its advert is
// gone, so an old advert cannot be replayed.
type peerState struct {
	instance string
	seq      uint64
	issued   int64
	expires  time.Time
	msgID    string
	author   string
	live     bool
	missing  int // history reads in a row that lacked msgID (missing.go)
	info     Info
}

// Info describes a verified advert, for `dsftp peers`.
type Info struct {
	// ID is the host key fingerprint.
	ID string
	// Name is the requested name; DisplayName is the sanitized, unique
	// name a mount shows (set by List).
	Name        string
	DisplayName string
	Addrs       []string
	// Client marks a client-only advert (an instance that shares nothing:
	// its keys may log in, but it is no peer to mount).
	Client     bool
	Issued     time.Time
	Expires    time.Time
	AuthorID   string
	AuthorName string
	MessageID  string
	// Unreachable and Via are what the advert says about routes to it.
	Unreachable bool
	Via         []string
	// UDP and NAT are the candidates of its QUIC path and its NAT type.
	UDP []string
	NAT string
	// Relay is its relayed QUIC address on a TURN server.
	Relay string
}

func newReceiver(t target, cfg Config, log *slog.Logger, selfID string) *receiver {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return &receiver{
		t: t, reg: cfg.Registry, log: log, selfID: selfID, allow: cfg.AllowUsers,
		timeout: cfg.RequestTimeout, now: cfg.now, confirmIn: cfg.confirmDelay,
		known: map[string]*peerState{}, done: map[string]string{}, stale: map[string]bool{},
	}
}

// message handles one created or edited message.
func (r *receiver) message(m *discordgo.Message, now time.Time) {
	if m == nil || m.ChannelID != r.t.channelID || !strings.HasPrefix(m.Content, "dsftp/") {
		return // chat, or not for us
	}
	r.mu.Lock()
	if c, ok := r.done[m.ID]; ok && c == m.Content {
		r.mu.Unlock()
		return
	}
	r.done[m.ID] = m.Content
	r.mu.Unlock()
	author, authorName := "", ""
	if m.Author != nil {
		author, authorName = m.Author.ID, m.Author.Username
	}
	d, err := advert.Decode(m.Content)
	if err == nil {
		err = d.Check(r.t.guildID, r.t.channelID, now)
	}
	if err == nil && len(r.allow) > 0 && !slices.Contains(r.allow, author) {
		err = errors.New("author is not in --allow-user")
	}
	if err != nil && d != nil && d.Fingerprint == r.selfID {
		// Signed with our own key: an earlier advert of ours (expired, say).
		r.log.Debug("discord: our own earlier advert", "message", m.ID, "err", err)
		r.mu.Lock()
		r.ownLocked(m, d, author)
		r.mu.Unlock()
		return
	}
	if err != nil {
		r.reject(err, m.ID, author)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Fingerprint == r.selfID {
		r.ownLocked(m, d, author)
		return
	}
	st := r.known[d.Fingerprint]
	if st != nil {
		switch {
		case st.instance == d.Instance && d.Seq < st.seq:
			return // an older advert of this run, soon deleted
		case st.instance == d.Instance && d.Seq == st.seq:
			if st.msgID != m.ID {
				r.rejectLocked(errors.New("replayed advert (sequence number did not rise)"), m.ID, author)
			}
			return
		case st.instance != d.Instance && d.Issued < st.issued:
			return // a leftover of an earlier run of this peer
		}
	}
	st = &peerState{
		instance: d.Instance, seq: d.Seq, issued: d.Issued, expires: time.Unix(d.Expires, 0),
		msgID: m.ID, author: author, live: true,
		info: Info{
			ID: d.Fingerprint, Name: d.Name, Addrs: d.Addrs, Client: d.Client,
			Issued: time.Unix(d.Issued, 0), Expires: time.Unix(d.Expires, 0),
			AuthorID: author, AuthorName: authorName, MessageID: m.ID,
			Unreachable: d.Unreachable, Via: d.Via, UDP: d.UDP, NAT: d.NAT, Relay: d.Relay,
		},
	}
	r.known[d.Fingerprint] = st
	p := d.Peer(peers.SourceDiscord)
	p.HostKeyFingerprint, p.AuthorID, p.Origin = d.Fingerprint, author, "discord:"+author
	r.reg.Upsert(p)
}

// deleted handles a deleted message: if it was a peer's current advert,
// the peer leaves.
func (r *receiver) deleted(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for fp, st := range r.known {
		if st.msgID == id && st.live {
			r.dropLocked(fp, st)
		}
	}
}

func (r *receiver) dropLocked(fp string, st *peerState) {
	st.live = false
	r.reg.RemoveFrom(fp, peers.SourceDiscord)
}

// catchUp reads the channel history back to advert.MaxTTL ago, oldest
// first, and drops peers whose advert vanished while we were not
// listening.
func (r *receiver) catchUp(ctx context.Context, s *discordgo.Session) error {
	start := r.now()
	cutoff := start.Add(-advert.MaxTTL)
	var all []*discordgo.Message
	before := ""
	for page := 0; page < maxHistoryPages; page++ {
		var msgs []*discordgo.Message
		err := call(ctx, r.timeout, func(o ...discordgo.RequestOption) (err error) {
			msgs, err = s.ChannelMessages(r.t.channelID, 100, before, "", "", o...)
			return
		})
		if err != nil {
			switch status, _ := restCode(err); status {
			case 403:
				return fmt.Errorf("%w (reading #%s history was refused)", ErrForbidden, r.t.channelName)
			case 404:
				return fmt.Errorf("%w: #%s was deleted", ErrNoChannel, r.t.channelName)
			case 401:
				return ErrBadToken
			}
			return fmt.Errorf("read #%s history: %w", r.t.channelName, err)
		}
		if err := checkMessages(r.t.base, msgs); err != nil {
			return err
		}
		all = append(all, msgs...)
		if len(msgs) < 100 {
			break
		}
		before = msgs[len(msgs)-1].ID
		if ts, err := discordgo.SnowflakeTimestamp(before); err != nil || ts.Before(cutoff) {
			break
		}
	}
	now := r.now()
	seen := map[string]bool{}
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		m.ChannelID = r.t.channelID // history answers may omit it
		seen[m.ID] = true
		r.message(m, now)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.judgeMissingLocked(all, seen, start, now)
	for id := range r.done {
		if !seen[id] {
			delete(r.done, id) // gone from the channel
		}
	}
	for fp, st := range r.known {
		if !st.live && now.Sub(st.expires) > advert.MaxTTL {
			delete(r.known, fp) // past any possible replay window
		}
	}
	return nil
}

// list returns the live adverts, sorted by name.
func (r *receiver) list(now time.Time) []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Info
	for _, st := range r.known {
		if st.live && st.expires.After(now) {
			out = append(out, st.info)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name+a.ID, b.Name+b.ID) })
	return out
}

func (r *receiver) reject(err error, msgID, author string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejectLocked(err, msgID, author)
}

// rejectLocked logs an ignored advert; the program's log limiter sums up
// a flood of them per reason.
func (r *receiver) rejectLocked(err error, msgID, author string) {
	r.log.Warn("discord: ignored advert", "reason", reasonOf(err), "err", err, "message", msgID, "author", author)
}

func reasonOf(err error) string {
	for _, e := range []error{advert.ErrTooLong, advert.ErrMalformed, advert.ErrSignature, advert.ErrBinding, advert.ErrExpired, advert.ErrFuture} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
