package route

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/dsftp/dsftp/peers"
	"golang.org/x/crypto/ssh"
)

// DefaultReverseConns is how many members an unreachable member keeps a
// reverse connection to.
const DefaultReverseConns = 2

// Dialer makes SSH connections to members' shares with our client keys
// and their advertised host keys checked, as on every dial. The session
// pool has it.
type Dialer interface {
	// SSHClient connects to peer's share at addr, without SFTP.
	SSHClient(ctx context.Context, peer peers.Peer, addr string) (*ssh.Client, error)
}

// ReverseOptions configure KeepReverse.
type ReverseOptions struct {
	// Dialer dials the members.
	Dialer Dialer
	// Timeout bounds each dial, and is the keepalive interval of the
	// reverse connections; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives the connections made and lost; nil means
	// slog.Default().
	Logger *slog.Logger
	// HostKey is our share's host key fingerprint, offered to members.
	HostKey string
	// Serve serves our share on a stream a member opened back (the
	// share's ServeStream): a complete SSH connection, for relays. holder
	// is that member's host key fingerprint, clientKey the fingerprint of
	// the client key of the member it relays for, as it says ("" for its
	// own reads). It returns when that connection ends.
	Serve func(c net.Conn, holder, clientKey string) error
	// ServeSFTP serves the SFTP channels the member holding a reverse
	// connection opens for its own reads (the share's ServeReverse);
	// holder is its host key fingerprint. It returns once chans is
	// closed. Without it members read through Serve.
	ServeSFTP func(remote net.Addr, holder string, chans <-chan ssh.NewChannel)
	// Needed reports whether we need reverse connections now: nobody
	// can dial our advertised addresses.
	Needed func() bool
	// Members lists the live peers to choose from.
	Members func() []peers.Entry
	// Conns is how many to keep; zero means DefaultReverseConns.
	Conns int
	// OnChange is told the IDs of the members that hold our reverse
	// connections, after every change, for our adverts.
	OnChange func(via []string)
}

// setDefaults fills the fields left zero (negative too) with their
// defaults.
func (o *ReverseOptions) setDefaults() {
	if o.Conns <= 0 {
		o.Conns = DefaultReverseConns
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// DefaultTimeout is ReverseOptions.Timeout when zero: the pool's.
const DefaultTimeout = 10 * time.Second

// reverseConn is one outbound connection that carries our share back.
type reverseConn struct {
	id     string
	client *ssh.Client
}

// KeepReverse keeps reverse connections while o.Needed says so: outbound
// SSH connections to the shares of a few reachable members (their
// advertised host keys verified, as on every dial), over which they may
// open channels back to our share. Each member is chosen by a hash of both
// fingerprints, so the unreachable members spread over the reachable
// ones. Lost connections are re-made, failed members retried with
// backoff. It returns when ctx ends.
func KeepReverse(ctx context.Context, o ReverseOptions) error {
	o.setDefaults()
	log := o.Logger
	var (
		mu      sync.Mutex
		held    = map[string]*reverseConn{}
		backoff = map[string]time.Duration{}
		retryAt = map[string]time.Time{}
		last    []string
	)
	report := func() {
		mu.Lock()
		via := make([]string, 0, len(held))
		for id := range held {
			via = append(via, id)
		}
		mu.Unlock()
		slices.Sort(via)
		if !slices.Equal(via, last) && o.OnChange != nil {
			last = via
			o.OnChange(via)
		}
	}
	defer func() {
		mu.Lock()
		for _, rc := range held {
			rc.client.Close()
		}
		mu.Unlock()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if o.Needed() && n < o.Conns {
			for _, e := range reverseCandidates(o) {
				mu.Lock()
				_, have := held[e.ID]
				wait := time.Now().Before(retryAt[e.ID])
				n = len(held)
				mu.Unlock()
				if have || wait || n >= o.Conns {
					continue
				}
				rc, err := dialReverse(ctx, log, e.Peer, o)
				mu.Lock()
				if err != nil {
					backoff[e.ID] = min(max(2*backoff[e.ID], time.Second), time.Minute)
					retryAt[e.ID] = time.Now().Add(backoff[e.ID])
					mu.Unlock()
					log.Debug("reverse connection failed", "peer", e.DisplayName, "err", err)
					continue
				}
				delete(backoff, e.ID)
				held[e.ID] = rc
				mu.Unlock()
				log.Info("keeping a reverse connection: this member can reach our share through it", "peer", e.DisplayName)
				go func() {
					_ = rc.client.Wait()
					mu.Lock()
					delete(held, rc.id)
					mu.Unlock()
					if ctx.Err() == nil { // not our own shutdown
						log.Info("reverse connection lost; making another", "peer", e.DisplayName)
					}
				}()
			}
		} else if !o.Needed() && n > 0 {
			mu.Lock()
			for _, rc := range held {
				rc.client.Close()
			}
			mu.Unlock()
		}
		report()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// reverseCandidates are the live members that may be reachable (their
// advert does not say otherwise), in rendezvous-hash order.
func reverseCandidates(o ReverseOptions) []peers.Entry {
	var out []peers.Entry
	for _, e := range o.Members() {
		if e.ClientOnly || e.Unreachable || e.ID == o.HostKey || len(e.Addrs) == 0 || e.HostKey == nil {
			continue
		}
		out = append(out, e)
	}
	score := func(id string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(o.HostKey + "/" + id))
		return h.Sum64()
	}
	slices.SortFunc(out, func(a, b peers.Entry) int {
		sa, sb := score(a.ID), score(b.ID)
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	return out
}

// dialReverse connects to member's share (direct addresses only), offers
// our share over the connection, and serves the channels it opens back.
func dialReverse(ctx context.Context, log *slog.Logger, member peers.Peer, o ReverseOptions) (*reverseConn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var errs []error
	for _, addr := range member.Addrs {
		client, err := o.Dialer.SSHClient(ctx, member, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chans := client.HandleChannelOpen(ChannelShare)
		if o.ServeSFTP != nil {
			sftpChans := client.HandleChannelOpen(ChannelSFTP)
			go o.ServeSFTP(client.RemoteAddr(), member.ID, onlyLive(sftpChans, member.ID, o.Members))
		}
		ok, _, err := client.SendRequest(RequestReverse, true, ssh.Marshal(ReverseRequest{HostKey: o.HostKey}))
		if err != nil || !ok {
			client.Close()
			return nil, fmt.Errorf("%s refused our reverse connection (%v)", peerLabel(member), err)
		}
		go serveReverse(log, client, member.ID, chans, o.Serve)
		go reverseKeepalive(client, o.Timeout)
		return &reverseConn{id: member.ID, client: client}, nil
	}
	return nil, fmt.Errorf("dial %s for a reverse connection: %v", peerLabel(member), errs)
}

// serveReverse serves the relays the member holding a reverse connection
// of ours (host key fingerprint holder) opens back over it.
func serveReverse(log *slog.Logger, client *ssh.Client, holder string, chans <-chan ssh.NewChannel, serve func(net.Conn, string, string) error) {
	for nc := range chans {
		var p ShareOpen
		if len(nc.ExtraData()) > 0 && ssh.Unmarshal(nc.ExtraData(), &p) != nil {
			_ = nc.Reject(ssh.ConnectionFailed, "malformed share channel request")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			if err := serve(NewStream(ch, client.LocalAddr(), client.RemoteAddr()), holder, p.ClientKey); err != nil {
				log.Debug("reverse channel not served", "err", err)
			}
		}()
	}
}

// onlyLive passes on the channels opened while the member holding the
// connection (host key fingerprint id, checked when we dialed it) has a
// live advert, as a login needs one; it refuses the others.
func onlyLive(in <-chan ssh.NewChannel, id string, members func() []peers.Entry) <-chan ssh.NewChannel {
	out := make(chan ssh.NewChannel)
	go func() {
		defer close(out)
		for nc := range in {
			live := slices.ContainsFunc(members(), func(e peers.Entry) bool { return e.ID == id && !e.ClientOnly })
			if !live {
				_ = nc.Reject(ssh.Prohibited, "not a member with a live advert")
				continue
			}
			out <- nc
		}
	}()
	return out
}

// reverseKeepalive closes a reverse connection whose member stops
// answering, so that another is made.
func reverseKeepalive(client *ssh.Client, every time.Duration) {
	for {
		time.Sleep(every)
		done := make(chan error, 1)
		go func() {
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				return
			}
		case <-time.After(every):
			client.Close()
			return
		}
	}
}
