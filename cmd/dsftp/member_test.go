//go:build linux

package main

// A hand-made member of the fake Discord channel for attack tests: keys
// and a signed advert, no dsftp behind them, so a test can follow the
// protocol only as far as an attacker would (offer a reverse connection
// and never serve it, open relay channels and never read, ask for
// dial-back checks of any address it advertises).

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// fakeMember is one identity in the channel: a host key (its ID, which
// signs its adverts) and a client key (what it logs in with).
type fakeMember struct {
	f      *fakeDiscord
	token  string
	name   string
	host   ssh.Signer
	client ssh.Signer
	seq    uint64
	inst   string
	msgs   []string
}

// newFakeMember makes a member with its own bot token and fresh keys;
// nothing is posted until advertise.
func newFakeMember(t testing.TB, f *fakeDiscord, name string) *fakeMember {
	t.Helper()
	return &fakeMember{f: f, token: f.bot(), name: name, host: testenv.NewSigner(t), client: testenv.NewSigner(t), inst: advert.NewInstance()}
}

// fingerprint is the member's ID (its host key's fingerprint).
func (m *fakeMember) fingerprint() string { return ssh.FingerprintSHA256(m.host.PublicKey()) }

// advertise posts a signed advert with addrs (none: a share nobody can
// dial) and unreachable as given, live for ten minutes.
func (m *fakeMember) advertise(t testing.TB, addrs []string, unreachable bool) {
	t.Helper()
	m.post(t, advert.Advert{Addrs: addrs, Unreachable: unreachable})
}

// post signs and posts a, filled in with the member's name, keys, run and
// channel, live for ten minutes.
func (m *fakeMember) post(t testing.TB, a advert.Advert) {
	t.Helper()
	m.seq++
	now := time.Now()
	a.Name, a.Guild, a.Channel = m.name, m.f.guild, m.f.channel
	a.ClientKeys = []string{advert.MarshalKey(m.client.PublicKey())}
	a.Instance, a.Seq = m.inst, m.seq
	a.Issued, a.Expires = now.Unix(), now.Add(10*time.Minute).Unix()
	text, err := advert.Encode(a, m.host)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.f.Post(m.token, m.f.channel, text)
	if err != nil {
		t.Fatal(err)
	}
	m.msgs = append(m.msgs, id)
}

// memberConn is the member's logged-in connection to a share.
type memberConn struct {
	*ssh.Client
	// shareChans are the relay pipes the share opens back to the
	// member's (offered) share: nil until offerReverse.
	shareChans <-chan ssh.NewChannel
}

// login dials the share at 127.0.0.1:port, checks that it answers with
// hostKey and logs in with the member's client key; it retries for up to
// 15 s while the share has not yet read the member's advert.
func (m *fakeMember) login(t testing.TB, port int, hostKey ssh.PublicKey) *memberConn {
	t.Helper()
	var c *memberConn
	testenv.WaitFor(t, 15*time.Second, m.name+" to log in to the share", func() bool {
		var err error
		c, err = m.dial(port, hostKey)
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// dial is one login attempt; see login.
func (m *fakeMember) dial(port int, hostKey ssh.PublicKey) (*memberConn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(m.client)},
		HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 5 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &memberConn{Client: ssh.NewClient(sc, chans, reqs)}
	return c, nil
}

// offerReverse offers the member's own share over c, as an unreachable
// member does; the share's relay pipes to it arrive on c.shareChans.
func (m *fakeMember) offerReverse(t testing.TB, c *memberConn) {
	t.Helper()
	c.shareChans = c.HandleChannelOpen(route.ChannelShare)
	ok, _, err := c.SendRequest(route.RequestReverse, true, ssh.Marshal(route.ReverseRequest{HostKey: m.fingerprint()}))
	if err != nil || !ok {
		t.Fatalf("%s: the share refused the reverse offer (ok=%v, err=%v)", m.name, ok, err)
	}
}

// servePipes accepts every relay pipe the share opens back to the
// member's (offered) share and hands it to serve, in a goroutine of its
// own; it needs offerReverse first.
func (c *memberConn) servePipes(serve func(ssh.Channel)) {
	go func() {
		for nc := range c.shareChans {
			ch, reqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(reqs)
			go serve(ch)
		}
	}()
}

// openRelay asks the share over c for a pipe to the member with host key
// fingerprint target.
func (c *memberConn) openRelay(target string) (ssh.Channel, error) {
	ch, reqs, err := c.OpenChannel(route.ChannelRelay, ssh.Marshal(route.RelayRequest{Target: target}))
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

// dialBack asks the share over c to dial addrs back, with a fresh nonce
// for each as dsftp sends them: whether the share checked, the addresses
// it says answered with the member's host key, and how long the answer
// took.
func (c *memberConn) dialBack(addrs []string) (ok bool, reached []string, took time.Duration, err error) {
	nonces := make([]string, len(addrs))
	for i := range nonces {
		nonces[i] = rand.Text()
	}
	start := time.Now()
	ok, payload, err := c.SendRequest(route.RequestDialBack, true, ssh.Marshal(route.DialBackRequest{
		Addrs: strings.Join(addrs, "\n"), Nonces: strings.Join(nonces, "\n")}))
	took = time.Since(start)
	if err != nil || !ok {
		return false, nil, took, err
	}
	var r route.DialBackReply
	if err := ssh.Unmarshal(payload, &r); err != nil {
		return false, nil, took, err
	}
	return true, strings.Fields(r.Reached), took, nil
}

// serveDialBackLiar runs the member's own SSH server on 127.0.0.1, with
// its host key, letting in the client keys allow accepts: it answers
// every dial-back check with all the addresses asked "reached" and
// dials none, serves an empty share (the pool's connections open an SFTP
// session first), and counts the checks it answered.
// It returns the server's address, for the member's advert.
func (m *fakeMember) serveDialBackLiar(t testing.TB, allow func(ssh.PublicKey) bool) (addr string, answered *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answered = new(atomic.Int32)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if allow(k) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(m.host)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				stop := context.AfterFunc(t.Context(), func() { nc.Close() })
				defer stop()
				_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go serveEmptySFTP(chans)
				for req := range reqs {
					var p route.DialBackRequest
					if req.Type != route.RequestDialBack || ssh.Unmarshal(req.Payload, &p) != nil {
						_ = req.Reply(req.Type == "keepalive@openssh.com", nil)
						continue
					}
					answered.Add(1)
					_ = req.Reply(true, ssh.Marshal(route.DialBackReply{Reached: p.Addrs}))
				}
			})
		}
	})
	return ln.Addr().String(), answered
}

// serveEmptySFTP serves an empty in-memory directory on the session
// channels of a connection, and refuses other channels.
func serveEmptySFTP(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.Prohibited, "only sftp sessions")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range reqs {
				var sub struct{ Name string }
				ok := req.Type == "subsystem" && ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "sftp"
				_ = req.Reply(ok, nil)
				if ok {
					go ssh.DiscardRequests(reqs)
					_ = sftp.NewRequestServer(ch, sftp.InMemHandler()).Serve()
					return
				}
			}
		}()
	}
}

// TestFakeMember: a hand-made member logs in to a real share with the
// key of its advert, holds a reverse connection there, and a relay it
// asks for arrives back at it: the harness the attack tests stand on.
func TestFakeMember(t *testing.T) {
	f := newFakeDiscord(t)
	_, port := startDiscordShare(t, f, f.bot(), "alice", t.TempDir())
	alice, _ := f.advertOf("alice")
	m := newFakeMember(t, f, "mallory")
	m.advertise(t, nil, true)
	c := m.login(t, port, alice.HostKey)
	m.offerReverse(t, c)
	opened := make(chan string, 1)
	go func() {
		nc := <-c.shareChans
		opened <- nc.ChannelType()
		_ = nc.Reject(ssh.Prohibited, "test")
	}()
	if ch, err := c.openRelay(m.fingerprint()); err == nil {
		ch.Close()
	}
	select {
	case typ := <-opened:
		if typ != route.ChannelShare {
			t.Fatalf("the share opened %q, want %q", typ, route.ChannelShare)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the share did not open the relay's pipe back to the member")
	}
}
