// Package discord finds dsftp peers through a Discord text channel.
//
// Each running instance posts one signed advert (package advert) to the
// channel and reads everyone else's. Verified adverts become peers in a
// peers.Registry; a deleted or expired advert removes its peer.
//
// REST history is the truth and the gateway only a hint: history is read at
// start and after every gateway (re)connect, so what was
// missed while disconnected is caught up. Every REST call is bounded by a
// context; discordgo's own reconnect and rate-limit retry loops are off.
// While the gateway stays connected, history is also re-read about hourly.
//
// Cadence, sized for 100 peers in one channel: post once after a short
// random delay, then every Refresh (15 min ± 20%) post a new advert and
// delete the old one, and delete it on Close. That is about 8 REST writes
// per peer per hour, plus one post at start and one delete at exit.
package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/internal/pace"
)

// Defaults for Config's durations.
const (
	DefaultChannel        = "dsftp"
	DefaultTTL            = 40 * time.Minute
	DefaultRefresh        = 15 * time.Minute
	DefaultPostDelay      = 2 * time.Second
	DefaultRequestTimeout = 15 * time.Second
	DefaultMinRepost      = 10 * time.Second
)

// Config says where to advertise, what, and where verified peers go.
type Config struct {
	// Token is the bot token, with or without the "Bot " prefix. It is
	// never posted or logged.
	Token string
	// APIBase replaces https://discord.com (scheme and host) for REST
	// calls; "" means Discord itself. The gateway address comes from
	// GET /api/v9/gateway on that host.
	APIBase string
	// Guild is the server's name or ID; "" picks the bot's only server.
	Guild string
	// Channel is the text channel's name or ID ("" means "dsftp").
	Channel string
	// Name is the display name others see for this instance.
	Name string
	// User is the SSH user name others log in as ("" leaves it to them).
	User string
	// Signer is the share's SSH host key. It signs adverts, and clients
	// accept only this key for this peer. For ClientOnly it is a per-run
	// identity key that never serves.
	Signer ssh.Signer
	// ClientOnly posts client-only adverts: this instance shares nothing
	// (dsftp get, or mount and shell with --no-share), so the adverts carry
	// only ClientKeys, no addresses (Addrs and SetAddrs are ignored), and
	// receivers let those keys in without listing us as a peer.
	ClientOnly bool
	// ClientKeys are the public keys this instance logs in to other shares
	// with; their shares accept them while this advert is live.
	ClientKeys []ssh.PublicKey
	// Addrs are the share's host:port addresses, best first. SetAddrs
	// changes them later.
	Addrs []string
	// UDP and NAT are what the first advert says of the share's QUIC path
	// (SetUDP changes them later).
	UDP []string
	NAT string
	// Relay is what the first advert says of the share's relayed QUIC
	// address on a TURN server (SetRelay changes it later).
	Relay string
	// AllowUsers, when not empty, limits trust to adverts posted by these
	// Discord user IDs.
	AllowUsers []string
	// Registry receives verified peers (Source peers.SourceDiscord).
	Registry *peers.Registry
	// Logger receives progress and rejected adverts (rate limited); nil
	// means slog.Default().
	Logger *slog.Logger
	// TTL is how long each advert is valid (default 40 min, at most
	// advert.MaxTTL).
	TTL time.Duration
	// Refresh is the mean time between re-posts (default 15 min; each wait
	// is jittered by ±20% so peers that started together spread out).
	Refresh time.Duration
	// PostDelay is the longest random wait before the first post
	// (default 2 s; negative, none), so a channel restarting at once does
	// not burst.
	PostDelay time.Duration
	// RequestTimeout bounds every REST call (default 15 s).
	RequestTimeout time.Duration
	// MinRepost is the least time between re-posts caused by SetAddrs
	// (default 10 s), which keeps flapping addresses within budget.
	MinRepost time.Duration

	// now is the clock adverts are issued and judged by; nil is time.Now.
	// Tests skew it instead of waiting for the wall clock.
	now func() time.Time
	// confirmDelay is the wait before the history read that confirms a
	// missing advert; zero is the constant confirmDelay. Tests shorten it.
	confirmDelay time.Duration
}

// setDefaults fills the fields left zero (negative durations too, except
// PostDelay) with their defaults and caps TTL.
func (c *Config) setDefaults() {
	if c.now == nil {
		c.now = time.Now
	}
	if c.confirmDelay <= 0 {
		c.confirmDelay = confirmDelay
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	c.TTL = min(c.TTL, advert.MaxTTL)
	if c.Refresh <= 0 {
		c.Refresh = DefaultRefresh
	}
	if c.PostDelay < 0 {
		c.PostDelay = 0
	} else if c.PostDelay == 0 {
		c.PostDelay = DefaultPostDelay
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MinRepost <= 0 {
		c.MinRepost = DefaultMinRepost
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Discovery is a running advertiser and listener. Close it to delete the
// advert.
type Discovery struct {
	cfg      Config
	log      *slog.Logger
	s        *discordgo.Session
	t        target
	selfID   string // own host key fingerprint
	instance string
	recv     *receiver

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	addrsCh chan struct{}
	drop    chan struct{} // gateway disconnected
	resync  chan struct{} // gateway (re)connected: read history
	done    chan struct{} // run loop ended
	ready   atomic.Bool   // READY or RESUMED since the last Open

	mu    sync.Mutex
	addrs []string
	// unreachable and via are what adverts say about routes (SetRoutes).
	unreachable bool
	via         []string
	// udp and nat are the QUIC path's candidates and NAT type (SetUDP).
	udp      []string
	nat      string
	relay    string // the relayed QUIC address on a TURN server (SetRelay)
	seq      uint64
	myMsg    string // ID of the current advert message
	lastPost time.Time
	closing  bool
	err      error
}

// Start checks the token, finds the channel, connects to the gateway,
// reads history into the registry, and posts the first advert after a
// short random delay. It returns once that advert is posted, or with the
// first fatal error (bad token, missing intent, channel not found, no
// permission). ctx bounds only this start; discovery then runs until
// Close (or a fatal error, see Done).
func Start(ctx context.Context, cfg Config) (*Discovery, error) {
	cfg.setDefaults()
	if cfg.Signer == nil || cfg.Registry == nil {
		return nil, errors.New("discord discovery: Signer and Registry are required")
	}
	if cfg.ClientOnly {
		if len(cfg.ClientKeys) == 0 {
			return nil, errors.New("discord discovery: a client-only advert needs ClientKeys")
		}
		cfg.Addrs = nil
	}
	s, err := newSession(cfg.Token, cfg.APIBase)
	if err != nil {
		return nil, err
	}
	t, err := resolve(ctx, s, cfg.RequestTimeout, cfg.APIBase, cfg.Guild, cfg.Channel)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Discovery{
		cfg: cfg, log: cfg.Logger.With("channel", "#"+t.channelName), s: s, t: t,
		selfID:   ssh.FingerprintSHA256(cfg.Signer.PublicKey()),
		instance: advert.NewInstance(),
		ctx:      dctx, cancel: cancel,
		addrsCh: make(chan struct{}, 1),
		drop:    make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		addrs:   slices.Clone(cfg.Addrs),
		udp:     slices.Clone(cfg.UDP),
		nat:     cfg.NAT,
		relay:   cfg.Relay,
	}
	d.recv = newReceiver(t, cfg, d.log, d.selfID)
	d.recv.deleteStale = d.deleteStale
	d.recv.instance = d.instance
	d.recv.confirm = func() { time.AfterFunc(d.cfg.confirmDelay, func() { poke(d.resync) }) }
	s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { d.recv.message(m.Message, d.cfg.now()) })
	s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageUpdate) { d.recv.message(m.Message, d.cfg.now()) })
	s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDelete) {
		if m.Message == nil || m.ChannelID != t.channelID {
			return
		}
		d.recv.deleted(m.ID)
		d.mu.Lock()
		ours := m.ID == d.myMsg
		d.mu.Unlock()
		if ours {
			// Someone (a moderator, or another holder of a shared token)
			// deleted our live advert: post a new one soon.
			d.log.Info("discord: our advert was deleted; posting it again")
			poke(d.addrsCh)
		}
	})
	s.AddHandler(func(*discordgo.Session, *discordgo.Disconnect) { poke(d.drop) })
	s.AddHandler(func(*discordgo.Session, *discordgo.Ready) { d.ready.Store(true); poke(d.resync) })
	s.AddHandler(func(*discordgo.Session, *discordgo.Resumed) { d.ready.Store(true); poke(d.resync) })

	fail := func(err error) (*Discovery, error) {
		cancel()
		go s.Close()
		return nil, err
	}
	if err := s.Open(); err != nil {
		if fatal := explainGateway(err); fatal != nil {
			return fail(fatal)
		}
		return fail(fmt.Errorf("connect to the Discord gateway: %w", err))
	}
	drain(d.resync) // the READY of this Open; history is read just below
	if err := d.recv.catchUp(ctx, s); err != nil {
		return fail(err)
	}
	select {
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(rand.N(cfg.PostDelay + 1)):
	}
	if err := d.postRetrying(ctx); err != nil {
		return fail(err)
	}
	go d.run()
	return d, nil
}

// GuildID, ChannelID and BotID say where the adverts go and who posts them.
func (d *Discovery) GuildID() string   { return d.t.guildID }
func (d *Discovery) ChannelID() string { return d.t.channelID }
func (d *Discovery) BotID() string     { return d.t.botID }

// SetAddrs replaces the advertised addresses and re-posts at once (at most
// every MinRepost) when they changed.
func (d *Discovery) SetAddrs(addrs []string) {
	if d.cfg.ClientOnly {
		return // nothing to reach
	}
	d.mu.Lock()
	changed := !slices.Equal(d.addrs, addrs)
	d.addrs = slices.Clone(addrs)
	d.mu.Unlock()
	if changed {
		poke(d.addrsCh)
	}
}

// SetRoutes sets what the next adverts say about reaching this share:
// whether it is unreachable from the internet and which members hold its
// reverse connections (by fingerprint). A change re-posts, like SetAddrs.
func (d *Discovery) SetRoutes(unreachable bool, via []string) {
	if d.cfg.ClientOnly {
		return
	}
	via = slices.Sorted(slices.Values(via))
	d.mu.Lock()
	changed := d.unreachable != unreachable || !slices.Equal(d.via, via)
	d.unreachable, d.via = unreachable, via
	d.mu.Unlock()
	if changed {
		poke(d.addrsCh)
	}
}

// SetUDP sets the candidates of the share's QUIC path (best first) and
// what STUN said of its NAT. A change re-posts, like SetAddrs; the same
// values again post nothing, so the STUN refresh costs no channel writes.
func (d *Discovery) SetUDP(cands []string, nat string) {
	if d.cfg.ClientOnly {
		return
	}
	d.mu.Lock()
	changed := d.nat != nat || !slices.Equal(d.udp, cands)
	d.udp, d.nat = slices.Clone(cands), nat
	d.mu.Unlock()
	if changed {
		poke(d.addrsCh)
	}
}

// SetRelay sets the share's relayed QUIC address on a TURN server (""
// for none). A change re-posts, like SetAddrs.
func (d *Discovery) SetRelay(addr string) {
	if d.cfg.ClientOnly {
		return
	}
	d.mu.Lock()
	changed := d.relay != addr
	d.relay = addr
	d.mu.Unlock()
	if changed {
		poke(d.addrsCh)
	}
}

// Done is closed when discovery stops: after Close, or after a fatal error
// (see Err).
func (d *Discovery) Done() <-chan struct{} { return d.done }

// Err returns the fatal error that stopped discovery, if any.
func (d *Discovery) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Close stops discovery and deletes the advert, bounded by ctx.
func (d *Discovery) Close(ctx context.Context) error {
	d.mu.Lock()
	already := d.closing
	d.closing = true
	d.mu.Unlock()
	if already {
		return nil
	}
	d.cancel()
	<-d.done
	d.mu.Lock()
	msg := d.myMsg
	d.myMsg = ""
	d.mu.Unlock()
	var err error
	if msg != "" {
		err = call(ctx, d.cfg.RequestTimeout, func(o ...discordgo.RequestOption) error {
			return d.s.ChannelMessageDelete(d.t.channelID, msg, o...)
		})
		if err != nil {
			err = fmt.Errorf("delete advert: %w", err)
		}
	}
	// discordgo's Close sends the close frame and then sleeps a second
	// for the server's answer; the advert is already gone, so nobody
	// needs to wait for that.
	go d.s.Close()
	return err
}

// run keeps the advert fresh and the gateway connected until Close.
func (d *Discovery) run() {
	defer close(d.done)
	refresh := time.NewTimer(pace.Jitter(d.cfg.Refresh, 20))
	defer refresh.Stop()
	failures := 0 // gateway connections in a row that never became ready
	retry := 0    // failed posts in a row
	refreshes := 0
	repost := time.NewTimer(time.Hour)
	repost.Stop()
	defer repost.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-refresh.C:
			// History is re-read after every gateway (re)connect; while
			// connected, every fourth refresh (about an hour) is enough
			// as a safety net for a missed event.
			if refreshes++; refreshes%4 == 0 {
				if err := d.recv.catchUp(d.ctx, d.s); err != nil && d.fatal(err, "read channel history") {
					return
				}
			}
			next, ok := d.repost(&retry)
			if !ok {
				return
			}
			refresh.Reset(next)
		case <-d.addrsCh:
			d.mu.Lock()
			wait := d.cfg.MinRepost - time.Since(d.lastPost)
			d.mu.Unlock()
			repost.Reset(max(wait, 0))
		case <-repost.C:
			next, ok := d.repost(&retry)
			if !ok {
				return
			}
			refresh.Reset(next)
		case <-d.resync:
			if err := d.recv.catchUp(d.ctx, d.s); err != nil && d.fatal(err, "read channel history after reconnect") {
				return
			}
		case <-d.drop:
			if !d.reconnect(&failures) {
				return
			}
		}
	}
}

// repost posts a fresh advert and returns when to refresh next. A failed
// post is retried with backoff (10 s, 20 s, … at most Refresh) rather than
// a whole refresh later, so a short outage does not let the advert expire.
// It returns false when discovery must stop.
func (d *Discovery) repost(retry *int) (time.Duration, bool) {
	err := d.postRetrying(d.ctx)
	if err == nil {
		*retry = 0
		return pace.Jitter(d.cfg.Refresh, 20), true
	}
	if d.fatal(err, "post advert") {
		return 0, false
	}
	*retry++
	return pace.Jitter(min(d.cfg.MinRepost<<min(*retry-1, 8), d.cfg.Refresh), 20), true
}

// reconnect reopens the gateway with backoff (discordgo's own loop is off:
// it can storm and does not re-read history). History is read once the
// gateway says READY or RESUMED. A connection that dropped before either
// counts as a failure: the backoff keeps growing and the token is checked
// over REST, so a revoked token ends in one clear error, not a loop. It
// returns false when discovery must stop.
func (d *Discovery) reconnect(failures *int) bool {
	if d.ready.Load() {
		*failures = 0
	} else {
		*failures++
	}
	for {
		wait := time.Duration(0)
		if *failures > 0 {
			wait = pace.Jitter(min(time.Second<<min(*failures-1, 6), time.Minute), 20)
			if err := d.checkToken(); err != nil {
				d.fatal(err, "")
				return false
			}
			d.log.Warn("discord: gateway connection lost; retrying", "in", wait.Round(time.Millisecond))
		}
		select {
		case <-d.ctx.Done():
			return false
		case <-time.After(wait):
		}
		d.ready.Store(false)
		err := d.s.Open()
		if err == nil || errors.Is(err, discordgo.ErrWSAlreadyOpen) {
			return true
		}
		if fatal := explainGateway(err); fatal != nil {
			d.fatal(fatal, "")
			return false
		}
		d.log.Debug("discord: gateway open failed", "err", err)
		*failures++
	}
}

// checkToken asks REST whether the token still works.
func (d *Discovery) checkToken() error {
	err := call(d.ctx, d.cfg.RequestTimeout, func(o ...discordgo.RequestOption) error {
		_, err := d.s.User("@me", o...)
		return err
	})
	if status, _ := restCode(err); status == 401 {
		return ErrBadToken
	}
	return nil
}

// fatal reports whether err must stop discovery, and records it if so;
// other errors are logged (as what failed) and retried later.
func (d *Discovery) fatal(err error, what string) bool {
	if d.ctx.Err() != nil {
		return true
	}
	if !errors.Is(err, ErrBadToken) && !errors.Is(err, ErrIntent) && !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNoChannel) {
		d.log.Warn("discord: "+what, "err", err)
		return false
	}
	d.log.Error("discord: discovery stopped", "err", err)
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	return true
}

// post publishes a new advert and then deletes the previous one, so there
// is never more than one visible advert except for that moment.
func (d *Discovery) post(ctx context.Context) error {
	d.mu.Lock()
	d.seq++
	now := d.cfg.now()
	a := advert.Advert{
		Name: d.cfg.Name, Addrs: slices.Clone(d.addrs), User: d.cfg.User, Client: d.cfg.ClientOnly,
		Unreachable: d.unreachable, Via: slices.Clone(d.via), UDP: slices.Clone(d.udp), NAT: d.nat, Relay: d.relay,
		Guild: d.t.guildID, Channel: d.t.channelID, Instance: d.instance, Seq: d.seq,
		Issued: now.Unix(), Expires: now.Add(d.cfg.TTL).Unix(),
	}
	for _, k := range d.cfg.ClientKeys {
		a.ClientKeys = append(a.ClientKeys, advert.MarshalKey(k))
	}
	d.mu.Unlock()
	text, err := encodeFitting(a, d.cfg.Signer)
	if err != nil {
		return err
	}
	var m *discordgo.Message
	err = call(ctx, d.cfg.RequestTimeout, func(o ...discordgo.RequestOption) (err error) {
		m, err = d.s.ChannelMessageSend(d.t.channelID, text, o...)
		return
	})
	if err != nil {
		if status, _ := restCode(err); status == 403 {
			return fmt.Errorf("%w (posting to #%s was refused)", ErrForbidden, d.t.channelName)
		} else if status == 404 {
			return fmt.Errorf("%w: #%s was deleted", ErrNoChannel, d.t.channelName)
		}
		return fmt.Errorf("post advert: %w", err)
	}
	if err := checkPosted(d.t.base, m); err != nil {
		return err
	}
	d.mu.Lock()
	old := d.myMsg
	d.myMsg, d.lastPost = m.ID, time.Now()
	d.mu.Unlock()
	d.recv.posted(a.Seq)
	d.log.Debug("discord: advert posted", "message", m.ID, "seq", a.Seq, "addrs", a.Addrs)
	if old != "" {
		d.deleteMessage(ctx, old)
	}
	return nil
}

// encodeFitting signs a, dropping what is least useful until it fits in
// one message: the last (local) UDP candidates first, down to the public
// one, then the last addresses, down to the best one.
func encodeFitting(a advert.Advert, signer ssh.Signer) (string, error) {
	a.UDP = a.UDP[:min(len(a.UDP), advert.MaxUDP)]
	text, err := advert.Encode(a, signer)
	for errors.Is(err, advert.ErrTooLong) && !a.Client {
		switch {
		case len(a.UDP) > 1:
			a.UDP = a.UDP[:len(a.UDP)-1]
		case len(a.Addrs) > 1:
			a.Addrs = a.Addrs[:len(a.Addrs)-1] // keep the best ones
		default:
			return text, err
		}
		text, err = advert.Encode(a, signer)
	}
	return text, err
}

func (d *Discovery) deleteMessage(ctx context.Context, id string) {
	err := call(ctx, d.cfg.RequestTimeout, func(o ...discordgo.RequestOption) error {
		return d.s.ChannelMessageDelete(d.t.channelID, id, o...)
	})
	if err != nil {
		if status, _ := restCode(err); status != 404 {
			d.log.Warn("discord: delete old advert", "message", id, "err", err)
		}
	}
}

// deleteStale removes an advert of ours left by an earlier run (same host
// key, same bot), so the channel shows one advert per peer.
func (d *Discovery) deleteStale(id string) {
	go d.deleteMessage(d.ctx, id)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
