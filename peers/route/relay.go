package route

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"
)

// DefaultRelayRate caps the bytes per second this share relays between
// other members, both directions of all relays together (--relay-rate).
const DefaultRelayRate = 4 << 20

// Relay limits. A relay is two SSH channels: the one the asking member
// opened here, and the pipe this share opened over the target's reverse
// connection. x/crypto/ssh grants each channel a fixed window of 2 MiB
// (sshWindow) and keeps what arrives until it is read, so when one side
// stops reading, the relay holds up to a window from the other side in
// each channel, plus its copy buffers: RelayMemory. The caps below bound
// that in total, per member and per connection.
const (
	MaxRelays        = 64 // relays at once, all members together
	MaxRelaysPerKey  = 16 // relays at once for one member's client key
	MaxRelaysPerConn = 8  // relay channels at once on one connection

	// RelayIdleTimeout closes a relay through which no byte moved
	// either way for this long. The pool pings its connections and
	// closes idle ones well before (3 min), so a live relayed connection
	// is never closed by it.
	RelayIdleTimeout = 5 * time.Minute

	// relayOpenEvery and relayOpenBurst rate-limit relay requests per
	// client key, refused ones too: a member re-opening relays as fast as
	// they close would otherwise make this share open that many
	// connections to the target for it. A pool opens one per connection
	// it makes through a relay, and keeps those for minutes.
	relayOpenEvery = time.Second / 2
	relayOpenBurst = 16

	// relayLinger is how long one direction of a relay may go on after
	// the other ended.
	relayLinger = 5 * time.Second

	relayChunk = 32 << 10 // bytes copied at a time, per direction
	sshWindow  = 2 << 20  // x/crypto/ssh's channel window (channelWindowSize)

	// relayOverhead is the rest of a relay's memory: goroutines,
	// channel and limiter state (measured well under 64 KiB).
	relayOverhead = 64 << 10

	// RelayMemory is the most memory one relay holds, as SECURITY.md
	// states it.
	RelayMemory = 2*sshWindow + 2*relayChunk + relayOverhead

	// maxOpenLimiters bounds the per-key open rate table; full buckets
	// (keys quiet for relayOpenBurst seconds) are swept when it fills.
	maxOpenLimiters = 1024
)

// Reasons a relay is refused, as logged and sent back.
const (
	refuseRelayOpens = "too many relay requests from this member; try again in a few seconds"
	refuseRelays     = "too many relays through this member"
	refuseKeyRelays  = "too many relays for this member"
	refuseConnRelays = "too many relays on this connection"
)

// relayBudget counts the relays this share carries and shares
// --relay-rate between the members using them.
type relayBudget struct {
	fair *fairRate

	mu     sync.Mutex
	total  int
	perKey map[string]int
	opens  map[string]*rate.Limiter
}

func newRelayBudget(bytesPerSec int64) *relayBudget {
	return &relayBudget{fair: newFairRate(bytesPerSec), perKey: map[string]int{}, opens: map[string]*rate.Limiter{}}
}

// take counts a relay for key on a connection that has onConn already;
// "" means taken (call give).
func (b *relayBudget) take(key string, onConn *atomic.Int64, now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.opener(key, now).AllowN(now, 1) {
		return refuseRelayOpens
	}
	switch {
	case b.total >= MaxRelays:
		return refuseRelays
	case b.perKey[key] >= MaxRelaysPerKey:
		return refuseKeyRelays
	case onConn.Load() >= MaxRelaysPerConn:
		return refuseConnRelays
	}
	b.total++
	b.perKey[key]++
	onConn.Add(1)
	return ""
}

func (b *relayBudget) give(key string, onConn *atomic.Int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total--
	if b.perKey[key]--; b.perKey[key] <= 0 {
		delete(b.perKey, key)
	}
	onConn.Add(-1)
}

// opener is key's open rate limiter; b.mu is held.
func (b *relayBudget) opener(key string, now time.Time) *rate.Limiter {
	l := b.opens[key]
	if l != nil {
		return l
	}
	if len(b.opens) >= maxOpenLimiters {
		for k, o := range b.opens {
			if o.TokensAt(now) >= relayOpenBurst {
				delete(b.opens, k)
			}
		}
	}
	l = rate.NewLimiter(rate.Every(relayOpenEvery), relayOpenBurst)
	b.opens[key] = l
	return l
}

// fairRate caps relayed bytes in total and shares the cap equally
// between the members whose relays moved data in the last fairWindow,
// however many relays each has open.
type fairRate struct {
	limit rate.Limit // total; rate.Inf: no cap
	total *rate.Limiter

	mu      sync.Mutex
	members map[string]*memberRate
}

// fairWindow is how recently a member must have relayed to get a share.
const fairWindow = time.Second

type memberRate struct {
	lim    *rate.Limiter
	relays int
	last   time.Time
}

func newFairRate(bytesPerSec int64) *fairRate {
	limit := rate.Inf
	if bytesPerSec > 0 {
		limit = rate.Limit(bytesPerSec)
	}
	return &fairRate{limit: limit, total: rate.NewLimiter(limit, relayChunk), members: map[string]*memberRate{}}
}

// join registers a relay for key; leave once it ends.
func (f *fairRate) join(key string) *memberRate {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.members[key]
	if m == nil {
		m = &memberRate{lim: rate.NewLimiter(f.limit, relayChunk)}
		f.members[key] = m
	}
	m.relays++
	return m
}

func (f *fairRate) leave(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.members[key]; m != nil {
		if m.relays--; m.relays <= 0 {
			delete(f.members, key)
		}
	}
}

// wait blocks until m may relay n more bytes (n ≤ relayChunk), or ctx
// ends.
func (f *fairRate) wait(ctx context.Context, m *memberRate, n int) error {
	if f.limit == rate.Inf {
		return nil
	}
	now := time.Now()
	f.mu.Lock()
	m.last = now
	active := 0
	for _, o := range f.members {
		if now.Sub(o.last) < fairWindow {
			active++
		}
	}
	if share := f.limit / rate.Limit(active); m.lim.Limit() != share {
		m.lim.SetLimitAt(now, share)
	}
	f.mu.Unlock()
	if err := m.lim.WaitN(ctx, n); err != nil {
		return err
	}
	return f.total.WaitN(ctx, n)
}

// relay serves one relay channel on a logged-in connection: a pipe to
// the share of another member, through its reverse connection to this
// one, within the relay budget.
func (h *ConnHandler) relay(nc ssh.NewChannel) {
	s, log, clientKey := h.s, h.c.Log, h.c.ClientKey
	var p RelayRequest
	if s.opts.NoRelay || clientKey == "" {
		_ = nc.Reject(ssh.Prohibited, "this member does not relay")
		return
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed relay request")
		return
	}
	if reason := s.relays.take(clientKey, &h.relays, time.Now()); reason != "" {
		log.Info("refused a relay", "target", p.Target, "reason", reason)
		_ = nc.Reject(ssh.ResourceShortage, reason)
		return
	}
	defer s.relays.give(clientKey, &h.relays)
	if h.c.Busy != nil {
		defer h.c.Busy()()
	}
	to, err := s.table.Relay(clientKey, p.Target)
	if err != nil {
		log.Info("refused a relay", "target", p.Target, "err", err)
		_ = nc.Reject(ssh.Prohibited, err.Error())
		return
	}
	defer to.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	s.pipeRelay(log, ch, to, clientKey, p.Target)
}

// pipeRelay copies between ch and to until both sides are done, one side
// has been done for relayLinger, or nothing moved for RelayIdleTimeout.
func (s *Server) pipeRelay(log *slog.Logger, ch ssh.Channel, to net.Conn, clientKey, target string) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := s.relays.fair.join(clientKey)
	defer s.relays.fair.leave(clientKey)
	var (
		last     atomic.Int64 // unix nanoseconds of the last byte moved
		up, down int64
		wg       sync.WaitGroup
	)
	last.Store(start.UnixNano())
	half := make(chan struct{}, 2)
	pipe := func(dst io.WriteCloser, src io.Reader, n *int64) {
		defer wg.Done()
		defer func() { half <- struct{}{} }()
		*n = s.copyRelay(ctx, dst, src, m, &last)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go pipe(to, ch, &up)
	go pipe(ch, to, &down)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	why := s.waitRelay(half, finished, &last)
	cancel()
	ch.Close()
	to.Close()
	<-finished
	log.Info("relay ended", "target", target, "why", why, "bytes_to", up, "bytes_from", down,
		"duration", time.Since(start).Round(time.Millisecond))
}

// waitRelay waits for a relay's end and says why it ended: when one side
// is done the other gets relayLinger to finish, since a side that never
// does must not hold the relay; one where nothing moves is closed as idle.
func (s *Server) waitRelay(half, finished <-chan struct{}, last *atomic.Int64) string {
	t := time.NewTicker(min(max(RelayIdleTimeout/4, 10*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-half:
			select {
			case <-finished:
				return "ended"
			case <-time.After(relayLinger):
				return "one side ended"
			}
		case now := <-t.C:
			if now.Sub(time.Unix(0, last.Load())) >= RelayIdleTimeout {
				return "idle"
			}
		}
	}
}

// copyRelay copies src to dst within m's share of the relay rate, noting
// when a byte moved; it returns the bytes copied.
func (s *Server) copyRelay(ctx context.Context, dst io.Writer, src io.Reader, m *memberRate, last *atomic.Int64) int64 {
	buf := make([]byte, relayChunk)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			last.Store(time.Now().UnixNano())
			if s.relays.fair.wait(ctx, m, k) != nil {
				return n
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n
			}
			n += int64(k)
			last.Store(time.Now().UnixNano())
		}
		if err != nil {
			return n
		}
	}
}
