//go:build linux

package route

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// keyDialer dials members with one client key, their host key checked.
type keyDialer struct{ key ssh.Signer }

func (d keyDialer) SSHClient(ctx context.Context, peer peers.Peer, addr string) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "m", Auth: []ssh.AuthMethod{ssh.PublicKeys(d.key)},
		HostKeyCallback: ssh.FixedHostKey(peer.HostKey), Timeout: 10 * time.Second})
}

// recorder is what passed a relay, as the relayed-to share received and
// sent it.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

type recordConn struct {
	net.Conn
	r *recorder
}

func (c recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.r.buf.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

func (c recordConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.buf.Write(p)
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// serveSecret is a share behind a stream: an SSH server with host key
// hk that writes secret on every session channel.
func serveSecret(c net.Conn, hk ssh.Signer, secret string) error {
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(hk)
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return err
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(creqs)
		_, _ = io.WriteString(ch, secret)
		ch.Close()
	}
	return nil
}

// TestKeepReverseAndRelay: C, which nobody can dial, keeps a reverse
// connection to A (KeepReverse) and says so; B asks A to relay to C and
// runs a whole SSH session with C's share through the pipe, C's host key
// pinned. C learns who the relay is for (B's key, as A says); A sees only
// ciphertext: a random marker from C never passes in the clear. A opens
// SFTP channels to C only while A lives for C. Refused: an offer under a
// host key that is not the login key's member, a second offer on one
// connection, a relay to a share nobody offered.
func TestKeepReverseAndRelay(t *testing.T) {
	bKey, cKey, cHost := newSigner(t), newSigner(t), newSigner(t)
	marker := make([]byte, 16)
	_, _ = rand.Read(marker)
	secret := strings.Repeat("marker-"+hex.EncodeToString(marker)+"\n", 100)
	cFP, bFP := fingerprint(cHost), fingerprint(bKey)
	m := fakeMembers{
		cFP: {Peer: peers.Peer{ID: cFP, HostKey: cHost.PublicKey(), ClientKeys: []ssh.PublicKey{cKey.PublicKey()}}},
		bFP: {Peer: peers.Peer{ID: bFP, ClientKeys: []ssh.PublicKey{bKey.PublicKey()}}},
	}
	table := NewTable(m, nil)
	a := startTestShare(t, NewServer(table, ServerOptions{RelayRate: -1}), nil)
	aFP := fingerprint(a.signer)
	var aLive atomic.Bool
	aLive.Store(true)
	aEntry := peers.Entry{Peer: peers.Peer{ID: aFP, Addrs: []string{a.addr}, HostKey: a.signer.PublicKey()}}

	// Offers refused on a connection of C's own.
	c0 := a.dial(t, cKey)
	if ok, _, _ := c0.SendRequest(RequestReverse, true, ssh.Marshal(ReverseRequest{HostKey: bFP})); ok {
		t.Error("an offer under another member's host key was accepted")
	}
	if ok, _, _ := c0.SendRequest(RequestReverse, true, ssh.Marshal(ReverseRequest{HostKey: cFP})); !ok {
		t.Fatal("C's offer was refused")
	}
	if ok, _, _ := c0.SendRequest(RequestReverse, true, ssh.Marshal(ReverseRequest{HostKey: cFP})); ok {
		t.Error("a second offer on one connection was accepted")
	}
	if h := a.held.Load(); h == nil || *h != cFP {
		t.Errorf("the share was not told to hold C's reverse connection: %v", h)
	}
	c0.Close()
	testenv.WaitFor(t, 5*time.Second, "C's offer released with its connection", func() bool { return !table.Has(cFP) })

	rec := &recorder{}
	var relayedFor atomic.Pointer[[2]string]
	var via atomic.Pointer[[]string]
	ctx, cancel := context.WithCancel(context.Background())
	kept := make(chan error, 1)
	go func() {
		kept <- KeepReverse(ctx, ReverseOptions{
			Dialer: keyDialer{cKey}, Timeout: 5 * time.Second, HostKey: cFP, Conns: 1,
			Serve: func(c net.Conn, holder, clientKey string) error {
				relayedFor.Store(&[2]string{holder, clientKey})
				return serveSecret(recordConn{c, rec}, cHost, secret)
			},
			ServeSFTP: func(_ net.Addr, _ string, chans <-chan ssh.NewChannel) {
				for nc := range chans {
					if ch, reqs, err := nc.Accept(); err == nil {
						go ssh.DiscardRequests(reqs)
						_, _ = io.WriteString(ch, "sftp")
						ch.Close()
					}
				}
			},
			Needed: func() bool { return true },
			Members: func() []peers.Entry {
				out := []peers.Entry{m[cFP], m[bFP]}
				if aLive.Load() {
					out = append(out, aEntry)
				}
				return out
			},
			OnChange: func(v []string) { via.Store(&v) },
		})
	}()
	defer func() {
		cancel()
		if err := <-kept; err != nil {
			t.Errorf("KeepReverse: %v", err)
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "C's reverse connection held by A and advertised", func() bool {
		v := via.Load()
		return table.Has(cFP) && v != nil && slices.Equal(*v, []string{aFP})
	})

	b := a.dial(t, bKey)
	if _, _, err := b.OpenChannel(ChannelRelay, ssh.Marshal(RelayRequest{Target: "SHA256:nobody"})); err == nil {
		t.Error("a relay to a share nobody offered was accepted")
	}
	if _, _, err := b.OpenChannel(ChannelShare, nil); err == nil {
		t.Error("a client opened a reverse channel toward the share")
	}
	ch, reqs, err := b.OpenChannel(ChannelRelay, ssh.Marshal(RelayRequest{Target: cFP}))
	if err != nil {
		t.Fatalf("relay to C: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	sc, cchans, creqs, err := ssh.NewClientConn(NewStream(ch, b.LocalAddr(), b.RemoteAddr()), "c", &ssh.ClientConfig{
		User: "b", Auth: []ssh.AuthMethod{ssh.PublicKeys(bKey)}, HostKeyCallback: ssh.FixedHostKey(cHost.PublicKey()), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("SSH to C through the relay: %v", err)
	}
	client := ssh.NewClient(sc, cchans, creqs)
	defer client.Close()
	if a.busy.Load() != 1 {
		t.Errorf("%d busy marks on A's connection with one relay, want 1", a.busy.Load())
	}
	sess, reqs2, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs2)
	got, err := io.ReadAll(sess)
	if err != nil || string(got) != secret {
		t.Fatalf("read through the relay: %d bytes, %v", len(got), err)
	}
	if f := relayedFor.Load(); f == nil || *f != [2]string{aFP, bFP} {
		t.Errorf("C served a relay for %v, want holder %s for client key %s", f, aFP, bFP)
	}
	rec.mu.Lock()
	seen, clear := rec.buf.Len(), bytes.Contains(rec.buf.Bytes(), marker)
	rec.mu.Unlock()
	if seen < len(secret) || clear {
		t.Fatalf("the relay carried %d bytes for %d (marker in the clear: %v)", seen, len(secret), clear)
	}
	t.Logf("the relay carried %d bytes for %d bytes of secret; the marker never in the clear", seen, len(secret))

	h := table.Reverses(cFP)[0]
	if sch, err := h.OpenSFTP(table.NextLink()); err != nil {
		t.Fatalf("sftp channel to C while A lives: %v", err)
	} else if got, _ := io.ReadAll(sch); string(got) != "sftp" {
		t.Errorf("sftp channel read %q", got)
	}
	aLive.Store(false)
	if _, err := h.OpenSFTP(table.NextLink()); err == nil {
		t.Error("C served an sftp channel to A once A had no live advert")
	}
}

// TestDialBackRoundTrip: B asks A, over a connection of B's, to dial its
// advertised address back; A meets B's host key there and sends the
// nonce, which B's share sees arrive. An address that answers with
// another host key is not reached. Malformed checks, and checks by keys of
// no member, are refused at once.
func TestDialBackRoundTrip(t *testing.T) {
	bKey := newSigner(t)
	bTable := NewTable(fakeMembers{}, nil)
	bShare := startTestShare(t, NewServer(bTable, ServerOptions{}), bTable.DialBackArrived)
	other := startTestShare(t, NewServer(NewTable(fakeMembers{}, nil), ServerOptions{}), nil)
	bFP := fingerprint(bShare.signer)
	m := fakeMembers{bFP: {Peer: peers.Peer{ID: bFP, Name: "b", HostKey: bShare.signer.PublicKey(),
		Addrs: []string{bShare.addr, other.addr}, ClientKeys: []ssh.PublicKey{bKey.PublicKey()}}}}
	a := startTestShare(t, NewServer(NewTable(m, nil), ServerOptions{}), nil)
	aEntry := peers.Entry{Peer: peers.Peer{ID: fingerprint(a.signer), Name: "a", HostKey: a.signer.PublicKey(), Addrs: []string{a.addr}}}
	conn := a.dial(t, bKey)

	for _, p := range []any{
		DialBackRequest{Addrs: "a:1\nb:1\nc:1\nd:1\ne:1", Nonces: "1\n2\n3\n4\n5"},
		DialBackRequest{Addrs: "a:1\nb:1", Nonces: "1"},
		DialBackRequest{Addrs: "a:1", Nonces: strings.Repeat("n", 65)},
		DialBackRequest{Addrs: "127.0.0.1:1", Nonces: "1"}, // not advertised by b
		[]byte{1, 2},
	} {
		payload, ok := p.([]byte)
		if !ok {
			payload = ssh.Marshal(p)
		}
		if ok, _, err := conn.SendRequest(RequestDialBack, true, payload); err != nil || ok {
			t.Errorf("dial-back check %+v: ok=%v err=%v; want refused", p, ok, err)
		}
	}
	stranger := a.dial(t, newSigner(t))
	if ok, _, _ := stranger.SendRequest(RequestDialBack, true, ssh.Marshal(DialBackAddrs{Addrs: bShare.addr})); ok {
		t.Error("a key of no member had a dial-back check done")
	}

	ctx := testenv.Context(t, 30*time.Second)
	reached, checked := bTable.CheckReachable(ctx, clientRequester{conn}, []peers.Entry{aEntry}, bFP, []string{bShare.addr, other.addr})
	if checked != 1 || !slices.Equal(reached, []string{bShare.addr}) {
		t.Fatalf("reached %v by %d members; want %s by 1", reached, checked, bShare.addr)
	}
	if bTable.DialBackArrived(DialBackUser + "anything") {
		t.Error("a nonce never issued arrived")
	}
}

// clientRequester sends every request over one client connection.
type clientRequester struct{ c *ssh.Client }

func (r clientRequester) SendRequest(ctx context.Context, _ peers.Peer, name string, payload []byte) (bool, []byte, error) {
	return r.c.SendRequest(name, true, payload)
}
