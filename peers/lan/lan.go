// Package lan finds dsftp peers on the local network, the way Syncthing's
// local discovery does: every instance sends its signed advert over UDP to
// the IPv4 broadcast address and the IPv6 link-local multicast group of each
// interface, and feeds the verified adverts it hears into a peers.Registry.
//
// The advert format and its verification are not this package's: a Codec
// (the same signed advert the Discord channel carries) encodes the local
// advert and checks received ones. This package is the transport: sockets,
// cadence, rate limits, replay and duplicate suppression.
//
// Several processes on one host share the port with SO_REUSEPORT. Unicast
// to a shared port reaches only one of them, so adverts go only to broadcast
// and multicast destinations, which every socket receives; on the loopback
// interface (which has no multicast) that is 127.255.255.255.
//
// A listener that announces nothing (`dsftp peers`) may send a Query,
// which live members answer with an announcement at once.
package lan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/internal/pace"
	"golang.org/x/crypto/ssh"
)

// Port is the UDP port LAN adverts are sent to and received on.
const Port = 21029 // next to Syncthing's 21027, not on it

// Group is the IPv6 link-local multicast group LAN adverts are sent to
// (transient, link-local scope).
var Group = net.ParseIP("ff12::d5f7")

// Defaults.
const (
	// DefaultInterval is the time between two announcements.
	DefaultInterval = 30 * time.Second
	// MissedAnnouncements is how many announcements a peer may miss before
	// it expires.
	MissedAnnouncements = 3
	// MaxPacket is the largest datagram accepted; an advert fits in 2,000
	// bytes (it is sized for a Discord message).
	MaxPacket = 4096
	// Prefix starts every advert; anything else is dropped unread.
	Prefix = "dsftp/"
	// DefaultMaxPeers caps the peers (and client-only adverts) known from
	// the LAN at once; adverts of newcomers beyond it are dropped.
	DefaultMaxPeers = 1000
	// DefaultMaxPeersPerSource caps them per source address (a host runs
	// a few dsftp at most; a flood of fresh keys from one host stops here).
	DefaultMaxPeersPerSource = 32
)

// Advert is what a Codec found in a verified advert.
type Advert struct {
	// Peer is the advertised peer: ID (host key fingerprint), Name, Addrs,
	// HostKey, ClientKeys, User, Path and Expires (the advert's expiry).
	Peer peers.Peer
	// Instance identifies one run of dsftp; Seq rises with every advert
	// that run signs.
	Instance string
	Seq      uint64
}

// Codec signs the local advert and checks received ones. The real one is
// the signed advert of the Discord discovery, used unchanged.
type Codec interface {
	// Encode returns a freshly signed advert of the local instance that
	// expires after ttl, with a sequence number higher than the last.
	Encode(ttl time.Duration) ([]byte, error)
	// Verify checks the signature and expiry of msg and returns what it
	// says. It must not trust anything in msg before the check.
	Verify(msg []byte) (Advert, error)
}

// Options configure a Discovery. Zero values mean the documented default.
type Options struct {
	// Codec encodes our advert and verifies others'. Required.
	Codec Codec
	// Registry receives verified peers with Source peers.SourceLAN. Required.
	Registry *peers.Registry
	// SelfID is our own peer ID (host key fingerprint); adverts carrying it
	// are ignored.
	SelfID string
	// Port is the UDP port; 0 means Port.
	Port int
	// Interfaces limits sending and receiving to the named interfaces;
	// empty means every interface that is up, loopback included.
	Interfaces []string
	// Interval is the time between announcements; 0 means DefaultInterval.
	// Peers expire after MissedAnnouncements missed ones.
	Interval time.Duration
	// MinGap is the least time between two announcements triggered by
	// hearing a new peer or an address change (they coalesce); 0 means
	// 100 ms.
	MinGap time.Duration
	// PollInterval is how often interface addresses are checked for
	// changes; 0 means 2 s.
	PollInterval time.Duration
	// RateLimit is the number of adverts per second verified in total;
	// more are dropped. 0 means 200. Each source address gets a tenth.
	RateLimit float64
	// MaxPeers caps the peers known from the LAN at once, in total and
	// (MaxPeersPerSource) per source address; adverts of further new
	// peers are dropped (logged once) until some expire. 0 means
	// DefaultMaxPeers and DefaultMaxPeersPerSource.
	MaxPeers, MaxPeersPerSource int
	// ListenOnly makes a listener that never sends: no announcements and
	// no leaving advert, so nobody learns of it. Only Codec.Verify is
	// used (NewVerifyCodec needs no host key). For `dsftp peers`.
	ListenOnly bool
	// Query makes a ListenOnly listener ask the members to announce at
	// once (see Query), so that it hears every live one within a second
	// instead of an Interval.
	Query bool
	// OnAddrsChange, if set, is called (from Run's goroutine) when the
	// local interface addresses change, before the announcement that
	// follows, so the caller can update the addresses it advertises.
	OnAddrsChange func()
	// Logger is used for logs; nil means slog.Default().
	Logger *slog.Logger
}

// setDefaults fills the fields left zero (negative durations, rates and
// counts too) with their defaults.
func (o *Options) setDefaults() {
	if o.Port == 0 {
		o.Port = Port
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MinGap <= 0 {
		o.MinGap = 100 * time.Millisecond
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 200
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = DefaultMaxPeers
	}
	if o.MaxPeersPerSource <= 0 {
		o.MaxPeersPerSource = DefaultMaxPeersPerSource
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// counters count what happened to packets; the tests read them (Stats).
type counters struct {
	sent, received, accepted, own, duplicate, stale, malformed, invalid, rateLimited, foreign, capped atomic.Uint64
	queries, answered                                                                                 atomic.Uint64
}

// Discovery announces the local advert and listens for others'.
type Discovery struct {
	opts Options
	log  *slog.Logger
	port int

	mu         sync.Mutex
	v4, v6     *sock
	targets    []target               // where announcements go
	joined     map[int]bool           // interfaces whose v6 group we joined
	allowed    map[int]bool           // interface indexes we listen on (nil: all)
	seen       map[string]instanceSeq // instance -> newest sequence
	recent     recentSet              // hashes of adverts already handled
	sentRecent recentSet              // hashes of our own latest adverts
	limiter    *limiter
	// queryLimiter bounds the queries answered (see handleQuery).
	queryLimiter *limiter
	lastSig      string    // interfaces and addresses at the last scan
	known        peerCount // live peers by source, for the caps

	trigger chan struct{}
	stats   counters
}

type instanceSeq struct {
	seq     uint64
	expires time.Time
}

// New checks opts and returns a Discovery; call Listen, then Run.
func New(opts Options) (*Discovery, error) {
	if opts.Codec == nil {
		return nil, errors.New("lan discovery: no advert codec")
	}
	if opts.Registry == nil {
		return nil, errors.New("lan discovery: no peer registry")
	}
	opts.setDefaults()
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("lan discovery: port %d out of range 1-65535", opts.Port)
	}
	return &Discovery{
		opts:         opts,
		log:          opts.Logger.With("discovery", "lan"),
		port:         opts.Port,
		joined:       map[int]bool{},
		seen:         map[string]instanceSeq{},
		recent:       newRecentSet(1024),
		sentRecent:   newRecentSet(8),
		limiter:      newLimiter(opts.RateLimit, opts.RateLimit/10, 1024),
		queryLimiter: newLimiter(queryRate, queryRatePerSource, 1024),
		known:        newPeerCount(opts.MaxPeers, opts.MaxPeersPerSource),
		trigger:      make(chan struct{}, 1),
	}, nil
}

// TTL is how long our adverts stay valid: MissedAnnouncements intervals
// plus half an interval for jitter and delay.
func (d *Discovery) TTL() time.Duration {
	return MissedAnnouncements*d.opts.Interval + d.opts.Interval/2
}

// Port returns the UDP port in use.
func (d *Discovery) Port() int { return d.port }

// Listen opens the sockets: IPv4 and IPv6 on the shared port. It fails
// only when neither can be opened.
func (d *Discovery) Listen() error {
	v4, err4 := listen4(d.port)
	v6, err6 := listen6(d.port)
	if err4 != nil && err6 != nil {
		return fmt.Errorf("listen for LAN adverts on UDP port %d: %w (another program may hold the port without SO_REUSEPORT; choose another with --lan-port)", d.port, err4)
	}
	d.logListenErr("IPv6", err6)
	d.logListenErr("IPv4", err4)
	d.mu.Lock()
	d.v4, d.v6 = v4, v6
	d.mu.Unlock()
	d.rescan()
	return nil
}

// logListenErr reports a family that could not listen. A host without
// IPv6 is normal; a port another program holds without sharing it
// (SO_REUSEPORT) silently cuts this process off from the peers of that
// family, which the user must hear about and can fix.
func (d *Discovery) logListenErr(family string, err error) {
	switch {
	case err == nil:
	case errors.Is(err, syscall.EADDRINUSE):
		d.log.Warn(fmt.Sprintf("LAN discovery cannot use UDP port %d over %s: another program holds it without sharing it (SO_REUSEPORT), so peers on %s neither hear us nor are heard; stop that program (ss -ulpn 'sport = :%d' names it) or give every peer another --lan-port", d.port, family, family, d.port),
			"port", d.port, "family", family, "err", err)
	default:
		d.log.Debug("no "+family+" for LAN discovery", "err", err)
	}
}

// Announce asks for an announcement soon (coalesced with others), for
// example after the addresses the advert carries changed.
func (d *Discovery) Announce() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Run announces at once, then every Interval (±10%), at once when an
// unknown peer is heard or the addresses change, and feeds what it hears
// into the registry. It closes the sockets and returns when ctx is done.
func (d *Discovery) Run(ctx context.Context) error {
	d.mu.Lock()
	v4, v6 := d.v4, d.v6
	d.mu.Unlock()
	if v4 == nil && v6 == nil {
		return errors.New("lan discovery: Run before Listen")
	}
	var wg sync.WaitGroup
	for _, c := range []*sock{v4, v6} {
		if c != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.readLoop(c)
			}()
		}
	}
	defer func() {
		if !d.opts.ListenOnly {
			d.leave()
		}
		if v4 != nil {
			v4.Close()
		}
		if v6 != nil {
			v6.Close()
		}
		wg.Wait()
	}()

	if d.opts.ListenOnly {
		if d.opts.Query {
			d.query(ctx)
		}
		<-ctx.Done()
		return nil
	}

	// One timer for periodic and triggered announcements: whichever is
	// due first. Triggered ones keep MinGap apart from each other (not
	// from periodic ones, so a newcomer heard just after our start is
	// answered at once), and a burst of newcomers costs one announcement.
	var last time.Time     // of the last triggered announcement
	periodic := time.Now() // announce at once on start
	var pending bool
	timer := time.NewTimer(0)
	defer timer.Stop()
	poll := time.NewTicker(d.opts.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			if d.rescan() {
				d.log.Debug("interface addresses changed; announcing")
				if d.opts.OnAddrsChange != nil {
					d.opts.OnAddrsChange()
				}
				pending = true
			}
		case <-d.trigger:
			pending = true
		case <-timer.C:
		}
		now := time.Now()
		due := periodic
		if pending {
			if t := last.Add(d.opts.MinGap); t.Before(due) {
				due = t
			}
		}
		if !now.Before(due) {
			d.announce()
			if pending {
				last = now
			}
			pending = false
			periodic = now.Add(pace.Jitter(d.opts.Interval, 10))
			due = periodic
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(time.Until(due))
	}
}

// LeaveTTL is the lifetime of the advert sent on a clean exit: peers
// drop us this long after, instead of after MissedAnnouncements. (Advert
// times have a granularity of one second.)
const LeaveTTL = 2 * time.Second

// leave announces a short-lived advert so that peers drop us soon.
func (d *Discovery) leave() { d.send(LeaveTTL) }

// announce signs a fresh advert and sends it to every target.
func (d *Discovery) announce() { d.send(d.TTL()) }

// send signs a fresh advert valid for ttl and sends it to every target.
func (d *Discovery) send(ttl time.Duration) {
	msg, err := d.opts.Codec.Encode(ttl)
	if err != nil {
		d.log.Warn("cannot sign the LAN advert", "err", err)
		return
	}
	if len(msg) > MaxPacket {
		d.log.Warn("LAN advert too large; not sent", "bytes", len(msg), "max", MaxPacket)
		return
	}
	d.mu.Lock()
	d.sentRecent.add(hash(msg))
	d.mu.Unlock()
	d.sendRaw(msg, "advert")
}

// sendRaw sends msg to every target; what names it in the logs.
func (d *Discovery) sendRaw(msg []byte, what string) {
	d.mu.Lock()
	targets := append([]target(nil), d.targets...)
	v4, v6 := d.v4, d.v6
	d.mu.Unlock()
	sent := 0
	for _, t := range targets {
		c := v4
		if t.addr.IP.To4() == nil {
			c = v6
		}
		if c == nil {
			continue
		}
		if _, err := c.WriteToUDP(msg, t.addr); err != nil {
			d.log.Debug("send on the LAN", "what", what, "to", t.addr.String(), "err", err)
			continue
		}
		sent++
		d.stats.sent.Add(1)
	}
	d.log.Debug("sent on the LAN", "what", what, "destinations", sent, "bytes", len(msg))
}

// readLoop reads datagrams until the socket is closed.
func (d *Discovery) readLoop(c *sock) {
	buf := make([]byte, MaxPacket+1)
	for {
		n, src, ifindex, err := c.readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Debug("read LAN socket", "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		d.stats.received.Add(1)
		if !d.interfaceAllowed(ifindex) {
			d.stats.foreign.Add(1)
			continue
		}
		from, ok := src.(*net.UDPAddr)
		if !ok {
			d.stats.malformed.Add(1)
			continue
		}
		d.handle(buf[:n], from)
	}
}

// handle checks one datagram: cheap checks first, the signature last.
func (d *Discovery) handle(msg []byte, from *net.UDPAddr) {
	if IsQuery(msg) {
		d.handleQuery(from)
		return
	}
	if len(msg) > MaxPacket || !bytes.HasPrefix(msg, []byte(Prefix)) {
		d.stats.malformed.Add(1)
		d.log.Debug("dropped a datagram that is not a dsftp advert", "from", from.String(), "bytes", len(msg))
		return
	}
	h := hash(msg)
	d.mu.Lock()
	own := d.sentRecent.has(h)
	dup := !own && d.recent.has(h)
	d.mu.Unlock()
	if own {
		d.stats.own.Add(1)
		return
	}
	if dup {
		d.stats.duplicate.Add(1)
		return
	}
	if !d.limiter.allow(from.IP.String()) {
		d.stats.rateLimited.Add(1)
		d.log.Debug("LAN adverts arrive too fast; dropping some", "from", from.String())
		return
	}
	adv, err := d.verify(msg)
	if err != nil {
		d.stats.invalid.Add(1)
		d.log.Warn("ignored an invalid LAN advert", "from", from.String(), "err", err)
		return
	}
	now := time.Now()
	d.mu.Lock()
	d.recent.add(h)
	prev, known := d.seen[adv.Instance]
	fresh := !known || adv.Seq > prev.seq
	if fresh {
		d.seen[adv.Instance] = instanceSeq{seq: adv.Seq, expires: adv.Peer.Expires}
		d.pruneSeenLocked(now)
	}
	d.mu.Unlock()
	if adv.Peer.ID == d.opts.SelfID {
		d.stats.own.Add(1)
		return
	}
	if !fresh {
		d.stats.stale.Add(1)
		return
	}
	p := adv.Peer
	p.Source = peers.SourceLAN
	p.AuthorID = ""
	p.Origin = "lan:" + from.IP.String() // the source the LAN caps count by
	p.Addrs = withSource(p.Addrs, from)
	// Our own cadence bounds how long a peer lives without being heard,
	// whatever expiry (or clock) the sender has.
	if limit := now.Add(d.TTL()); p.Expires.IsZero() || p.Expires.After(limit) {
		p.Expires = limit
	}
	d.admit(p, from, now)
}

// verify checks an advert's signature, and that its peer ID is its host
// key's fingerprint.
func (d *Discovery) verify(msg []byte) (Advert, error) {
	adv, err := d.opts.Codec.Verify(msg)
	if err == nil && adv.Peer.HostKey == nil {
		err = errors.New("advert without a host key")
	}
	if err == nil && adv.Peer.ID != ssh.FingerprintSHA256(adv.Peer.HostKey) {
		err = errors.New("advert peer ID is not its host key's fingerprint")
	}
	return adv, err
}

// admit puts a verified, fresh peer heard from from into the registry,
// unless the caps on peers (per source address and in total) are full.
func (d *Discovery) admit(p peers.Peer, from *net.UDPAddr, now time.Time) {
	d.mu.Lock()
	verdict := d.known.admit(p.ID, from.IP.String(), p.Expires, now)
	d.mu.Unlock()
	switch verdict {
	case capSource:
		d.stats.capped.Add(1)
		d.log.Warn("a LAN address announces too many peers; ignoring its new ones until some expire (logged once per address)",
			"from", from.IP.String(), "max", d.opts.MaxPeersPerSource)
		return
	case capTotal:
		d.stats.capped.Add(1)
		d.log.Warn("too many peers on the LAN; ignoring newcomers until some expire (logged once)", "max", d.opts.MaxPeers)
		return
	case capSilent:
		d.stats.capped.Add(1)
		return
	}
	d.stats.accepted.Add(1)
	if d.opts.Registry.Upsert(p) {
		// Every newcomer at debug level, which the log limiter passes in
		// full; the Info line below is summed up under a flood.
		d.log.Debug("new LAN peer", "name", p.Name, "id", p.ID)
		if p.ClientOnly {
			d.log.Info("heard a client on the LAN (it shares nothing; its key may log in)", "name", p.Name, "id", p.ID, "from", from.String())
		} else {
			d.log.Info("found peer on the LAN", "name", p.Name, "id", p.ID, "addrs", p.Addrs, "from", from.String())
		}
		if !d.opts.ListenOnly {
			d.Announce() // let the newcomer hear of us at once
		}
	}
}

// withSource appends the address the advert came from, on the advertised
// port, as a last candidate. It reaches a share whose advertised addresses
// are wrong from here, and makes IPv6 link-local work: the sender cannot
// know our zone, the arrival interface names it. Dialing it is safe, as the
// client accepts only the advertised host key.
func withSource(addrs []string, from *net.UDPAddr) []string {
	if len(addrs) == 0 || from == nil {
		return addrs
	}
	_, port, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return addrs
	}
	ip := from.AddrPort().Addr().Unmap()
	host := ip.String()
	if ip.Is6() && ip.IsLinkLocalUnicast() {
		if from.Zone == "" {
			return addrs
		}
		host = ip.WithZone(from.Zone).String()
	}
	cand := net.JoinHostPort(host, port)
	if slices.Contains(addrs, cand) {
		return addrs
	}
	return append(slices.Clone(addrs), cand)
}

// pruneSeenLocked forgets instances whose last advert has expired; a
// replay of one is then refused by its expiry instead.
func (d *Discovery) pruneSeenLocked(now time.Time) {
	if len(d.seen) < 256 {
		return
	}
	for k, v := range d.seen {
		if !v.expires.IsZero() && v.expires.Before(now) {
			delete(d.seen, k)
		}
	}
}

func hash(b []byte) [32]byte { return sha256.Sum256(b) }

// recentSet remembers the last n hashes.
type recentSet struct {
	ring []([32]byte)
	set  map[[32]byte]struct{}
	next int
}

func newRecentSet(n int) recentSet {
	return recentSet{ring: make([][32]byte, 0, n), set: map[[32]byte]struct{}{}}
}

func (r *recentSet) has(h [32]byte) bool { _, ok := r.set[h]; return ok }

func (r *recentSet) add(h [32]byte) {
	if r.has(h) {
		return
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, h)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = h
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[h] = struct{}{}
}
