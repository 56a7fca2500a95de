package route

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsftp/dsftp/peers"
	"golang.org/x/crypto/ssh"
)

// maxOffersPerPeer bounds the reverse connections one member may hold
// open to this share.
const maxOffersPerPeer = 2

// OpenTimeout bounds the wait for a member to answer a channel opened
// over its reverse connection. Its own dsftp answers at once; one that
// does not within this is not serving its reverse connection, which is
// closed (so it offers a working one, or none).
const OpenTimeout = 10 * time.Second

// Members is what routes ask of the registry. *peers.Registry has it.
type Members interface {
	ByID(id string) (peers.Entry, bool)
	ClientKeyMember(fp string) (string, bool)
}

// Table is the table of reverse connections this share holds, by the
// offering member's host key fingerprint: the share's Server asks it
// whether to accept an offer or a relay, and the pool reads over it.
// It also keeps the nonces of our own dial-back checks and the limits of
// the checks we do for others.
type Table struct {
	members  Members
	log      *slog.Logger
	nextLink atomic.Uint32 // numbers the pool's links over reverse connections

	mu     sync.Mutex
	offers map[string][]*Held

	dialBack dialBackLimits // the checks we do for others (dialback.go)
	nonces   nonceTable     // the checks others do for us
}

// Held is one reverse connection held: a member's connection to our share
// over which we may open channels to its share.
type Held struct {
	conn ssh.Conn      // the member's connection to our share
	done chan struct{} // closed when it ends
}

// NewTable returns an empty table that checks membership with m and
// logs to log (nil: slog.Default()).
func NewTable(m Members, log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	return &Table{members: m, log: log, offers: map[string][]*Held{}}
}

// Members is the registry the table asks.
func (t *Table) Members() Members { return t.members }

// Offer accepts a reverse connection only from the member that owns
// hostKey: the key it logged in with must be one of that member's
// advertised client keys. It returns what to call when conn ends.
func (t *Table) Offer(clientKey, hostKey string, conn ssh.Conn) (func(), error) {
	e, ok := t.members.ByID(hostKey)
	if !ok || e.ClientOnly {
		return nil, fmt.Errorf("%s is not a member with a live advert", hostKey)
	}
	if !slices.ContainsFunc(e.ClientKeys, func(k ssh.PublicKey) bool { return ssh.FingerprintSHA256(k) == clientKey }) {
		return nil, fmt.Errorf("the login key %s is not a client key of %s", clientKey, hostKey)
	}
	h := &Held{conn: conn, done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.offers[hostKey]) >= maxOffersPerPeer {
		return nil, fmt.Errorf("already %d reverse connections from %s", maxOffersPerPeer, hostKey)
	}
	t.offers[hostKey] = append(t.offers[hostKey], h)
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.offers[hostKey] = slices.DeleteFunc(t.offers[hostKey], func(x *Held) bool { return x == h })
		if len(t.offers[hostKey]) == 0 {
			delete(t.offers, hostKey)
		}
		close(h.done)
	}, nil
}

// Relay pipes a member with a live advert to another one whose reverse
// connection this share holds, telling that one which client key the
// relay is for (ShareOpen), so that it counts what arrives against that
// member rather than against us.
func (t *Table) Relay(clientKey, target string) (net.Conn, error) {
	if _, ok := t.members.ClientKeyMember(clientKey); !ok {
		return nil, errors.New("relays are only for members with a live advert")
	}
	if !t.Live(target) {
		return nil, fmt.Errorf("%s is not a member with a live advert", target)
	}
	return t.open(target, ssh.Marshal(ShareOpen{ClientKey: clientKey}))
}

// Live reports whether hostKey is a sharing member with a live advert.
func (t *Table) Live(hostKey string) bool {
	e, ok := t.members.ByID(hostKey)
	return ok && !e.ClientOnly
}

// Has reports whether a reverse connection from hostKey is held.
func (t *Table) Has(hostKey string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.offers[hostKey]) > 0
}

// Held counts the reverse connections held, and the members they come
// from.
func (t *Table) Held() (conns, members int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, os := range t.offers {
		conns += len(os)
	}
	return conns, len(t.offers)
}

// Reverses are the reverse connections held from hostKey, the newest
// first.
func (t *Table) Reverses(hostKey string) []*Held {
	t.mu.Lock()
	os := slices.Clone(t.offers[hostKey]) // newest last
	t.mu.Unlock()
	slices.Reverse(os)
	return os
}

// NextLink numbers a group of SFTP channels (OpenSFTP) that the pool
// opens as one connection.
func (t *Table) NextLink() uint32 { return t.nextLink.Add(1) }

// Open opens a stream that carries a complete SSH connection to the share
// of hostKey, over one of its reverse connections, the newest first, for
// our own reads.
func (t *Table) Open(hostKey string) (net.Conn, error) { return t.open(hostKey, nil) }

// open is Open with the ChannelShare payload (a relay's ShareOpen).
func (t *Table) open(hostKey string, payload []byte) (net.Conn, error) {
	os := t.Reverses(hostKey)
	if len(os) == 0 {
		return nil, fmt.Errorf("no reverse connection from %s is held here", hostKey)
	}
	var errs []error
	for _, h := range os {
		ch, err := openChannel(h.conn, ChannelShare, payload, OpenTimeout)
		if err == nil {
			return NewStream(ch, h.conn.LocalAddr(), h.conn.RemoteAddr()), nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("open a reverse channel to %s: %w", hostKey, errors.Join(errs...))
}

// OpenSFTP opens an SFTP session with the member's share over h
// (ChannelSFTP): the sessions opened with the same link number are one
// connection to it, with its limits.
func (h *Held) OpenSFTP(link uint32) (ssh.Channel, error) {
	ch, reqs, err := h.conn.OpenChannel(ChannelSFTP, ssh.Marshal(SFTPOpen{Conn: link}))
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

// SendRequest sends a global request over h: keepalives check it.
func (h *Held) SendRequest(name string, wantReply bool, payload []byte) (bool, []byte, error) {
	return h.conn.SendRequest(name, wantReply, payload)
}

func (h *Held) LocalAddr() net.Addr  { return h.conn.LocalAddr() }
func (h *Held) RemoteAddr() net.Addr { return h.conn.RemoteAddr() }

// Done is closed when the reverse connection ends.
func (h *Held) Done() <-chan struct{} { return h.done }

// errOpenTimeout: the member did not answer a channel open in time.
var errOpenTimeout = fmt.Errorf("no answer to a channel open within %v; closed its reverse connection", OpenTimeout)

// openChannel opens a channel of type typ on conn, giving the other end
// up to d to answer; one that does not gets conn closed, which also ends
// the wait (x/crypto/ssh has no way to give up on one open alone).
func openChannel(conn ssh.Conn, typ string, payload []byte, d time.Duration) (ssh.Channel, error) {
	type result struct {
		ch  ssh.Channel
		err error
	}
	done := make(chan result, 1)
	go func() {
		ch, reqs, err := conn.OpenChannel(typ, payload)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		done <- result{ch, err}
	}()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case r := <-done:
		return r.ch, r.err
	case <-tm.C:
		conn.Close()
		if r := <-done; r.err == nil {
			r.ch.Close()
		}
		return nil, errOpenTimeout
	}
}
