//go:build linux

package share

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/sshstream"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// stubRoutes stands in for the pool's route table: it accepts an offer
// only from the one client key that belongs to the offered host key, and
// relays only to a held share; what it relays is recorded.
type stubRoutes struct {
	owner   map[string]string // host key fp -> client key fp of that member
	arrived atomic.Int64

	mu       sync.Mutex
	conns    map[string]ssh.Conn
	recorded bytes.Buffer
}

func (r *stubRoutes) Offer(clientKey, hostKey string, conn ssh.Conn) (func(), error) {
	if r.owner[hostKey] != clientKey {
		return nil, errors.New("not that member's key")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[hostKey] = conn
	return func() {}, nil
}

func (r *stubRoutes) Relay(clientKey, target string) (net.Conn, error) {
	r.mu.Lock()
	conn := r.conns[target]
	r.mu.Unlock()
	if conn == nil {
		return nil, errors.New("no reverse connection from " + target)
	}
	ch, reqs, err := conn.OpenChannel(sshstream.ChannelShare, nil)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return &recordConn{Conn: sshstream.New(ch, conn.LocalAddr(), conn.RemoteAddr()), r: r}, nil
}

// Live: every member with a reverse connection here is live.
func (r *stubRoutes) Live(hostKey string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[hostKey] != nil
}

// DialBack reports every address reached: the share's part (limits,
// reply) is what is tested here; the dialing is the pool's.
func (r *stubRoutes) DialBack(clientKey string, addrs, nonces []string) ([]string, error) {
	return addrs, nil
}

// DialBackArrived knows one nonce, "ours", and counts its arrivals.
func (r *stubRoutes) DialBackArrived(nonce string) bool {
	if nonce != "ours" {
		return false
	}
	r.arrived.Add(1)
	return true
}

// recordConn records every byte that passes the relaying share.
type recordConn struct {
	net.Conn
	r *stubRoutes
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.r.recorded.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.recorded.Write(p)
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// TestReverseAndRelay: C, which nobody can dial, offers its share over its
// connection to A; B asks A to relay to C and runs a whole SSH session with
// C's share through the pipe, C's host key pinned. A sees only
// ciphertext: a random marker read from C never passes A in the clear.
// Refusals: an offer for someone else's host key, a relay to a share
// nobody offered, and a reverse channel opened toward a share by a client.
func TestReverseAndRelay(t *testing.T) {
	t.Parallel()
	cDir := t.TempDir()
	marker := make([]byte, 16)
	rand.Read(marker)
	secret := "marker-" + hex.EncodeToString(marker)
	if err := os.WriteFile(filepath.Join(cDir, "secret.txt"), []byte(strings.Repeat(secret+"\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	shareC := startTestShare(t, cDir, nil)
	routes := &stubRoutes{conns: map[string]ssh.Conn{}}
	shareA := startTestShare(t, t.TempDir(), func(o *Options) { o.Routes = routes })
	cFP := shareC.srv.Fingerprint()
	routes.owner = map[string]string{cFP: ssh.FingerprintSHA256(shareA.client.Signer.PublicKey())}

	// C dials A with its client key (A's fixture key), offers its share,
	// and serves what A opens back.
	toA, err := shareA.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer toA.Close()
	chans := toA.HandleChannelOpen(sshstream.ChannelShare)
	go func() {
		for nc := range chans {
			ch, reqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(reqs)
			go shareC.srv.ServeStream(sshstream.New(ch, toA.LocalAddr(), toA.RemoteAddr()), shareA.srv.Fingerprint(), "")
		}
	}()
	// Another member's host key is refused for this login key.
	if ok, _, err := toA.SendRequest(sshstream.RequestReverse, true, ssh.Marshal(sshstream.ReverseRequest{HostKey: shareA.srv.Fingerprint()})); err != nil || ok {
		t.Fatalf("offer under a host key that is not ours: ok=%v err=%v; want refused", ok, err)
	}
	if ok, _, err := toA.SendRequest(sshstream.RequestReverse, true, ssh.Marshal(sshstream.ReverseRequest{HostKey: cFP})); err != nil || !ok {
		t.Fatalf("reverse offer: ok=%v err=%v", ok, err)
	}

	// B: C's share accepts B's key (the fixture key of C's share).
	b, err := shareA.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.OpenChannel(sshstream.ChannelRelay, ssh.Marshal(sshstream.RelayRequest{Target: "SHA256:nobody"})); err == nil {
		t.Fatal("relay to an unknown fingerprint was accepted")
	}
	if _, _, err := b.OpenChannel(sshstream.ChannelShare, nil); err == nil {
		t.Fatal("a client opened a reverse channel toward the share")
	}
	ch, reqs, err := b.OpenChannel(sshstream.ChannelRelay, ssh.Marshal(sshstream.RelayRequest{Target: cFP}))
	if err != nil {
		t.Fatalf("relay to C: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	stream := sshstream.New(ch, b.LocalAddr(), b.RemoteAddr())
	sc, cchans, creqs, err := ssh.NewClientConn(stream, "c", &ssh.ClientConfig{
		User: "b", Auth: []ssh.AuthMethod{ssh.PublicKeys(shareC.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(shareC.srv.HostKey()), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("SSH to C through the relay: %v", err)
	}
	client := ssh.NewClient(sc, cchans, creqs)
	defer client.Close()
	sf, err := sftp.NewClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	got, err := readAllRemote(sf, "secret.txt")
	if err != nil || !strings.HasPrefix(string(got), secret) {
		t.Fatalf("read through the relay: %q, %v", got[:min(len(got), 40)], err)
	}
	routes.mu.Lock()
	seen := routes.recorded.Len()
	clear := bytes.Contains(routes.recorded.Bytes(), []byte(secret))
	routes.mu.Unlock()
	if seen < len(got) {
		t.Fatalf("the relay carried %d bytes for a %d-byte file; the recording missed the session", seen, len(got))
	}
	if clear {
		t.Fatal("the marker passed the relaying share in the clear")
	}
	t.Logf("relay carried %d bytes for the %d-byte file; marker never in the clear", seen, len(got))
}

// TestDialBackLimits: the share checks 1 to 4 addresses at a time, with
// a nonce for each or none, and answers with what its Routes reached.
func TestDialBackLimits(t *testing.T) {
	t.Parallel()
	s := startTestShare(t, t.TempDir(), func(o *Options) { o.Routes = &stubRoutes{conns: map[string]ssh.Conn{}} })
	c, err := s.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(payload any) (bool, string) {
		t.Helper()
		ok, p, err := c.SendRequest(sshstream.RequestDialBack, true, ssh.Marshal(payload))
		if err != nil {
			t.Fatal(err)
		}
		var r sshstream.DialBackReply
		if ok {
			if err := ssh.Unmarshal(p, &r); err != nil {
				t.Fatalf("reply: %v", err)
			}
		}
		return ok, r.Reached
	}
	if ok, _ := ask(sshstream.DialBackRequest{Addrs: "a:1\nb:1\nc:1\nd:1\ne:1", Nonces: "1\n2\n3\n4\n5"}); ok {
		t.Error("5 addresses were checked at once")
	}
	if ok, _ := ask(sshstream.DialBackRequest{Addrs: "a:1\nb:1", Nonces: "1"}); ok {
		t.Error("a check with one nonce for two addresses was done")
	}
	if ok, _ := ask(sshstream.DialBackRequest{Addrs: "a:1", Nonces: strings.Repeat("n", 65)}); ok {
		t.Error("a check with a 65-byte nonce was done")
	}
	if ok, got := ask(sshstream.DialBackRequest{Addrs: "a:1\n[2001:db8::1]:2", Nonces: "1\n2"}); !ok || got != "a:1\n[2001:db8::1]:2" {
		t.Errorf("check of 2 addresses: ok=%v reached %q", ok, got)
	}
	if ok, got := ask(sshstream.DialBackAddrs{Addrs: "a:1"}); !ok || got != "a:1" {
		t.Errorf("check without nonces: ok=%v reached %q", ok, got)
	}
}

// TestDialBackArrivalNoPenalty: a checker that stops after the "none"
// attempt with a nonce the share's member issued costs its address
// nothing, however often; one with a nonce nobody issued is an ordinary
// connection closed before trying to log in, and enough of them block
// the address.
func TestDialBackArrivalNoPenalty(t *testing.T) {
	t.Parallel()
	routes := &stubRoutes{conns: map[string]ssh.Conn{}}
	s := startTestShare(t, t.TempDir(), func(o *Options) { o.Routes = routes })
	src := sourceOf(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check := func(nonce string) error {
		_, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
			User: sshstream.DialBackUser + nonce, HostKeyCallback: ssh.FixedHostKey(s.srv.HostKey()), Timeout: 10 * time.Second,
		})
		return err
	}
	for range 20 {
		if err := check("ours"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("a dial-back check without keys: %v; want the login refused", err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "20 dial-back arrivals", func() bool { return routes.arrived.Load() == 20 })
	if _, blocked := s.srv.gate.pen.blocked(src, time.Now()); blocked {
		t.Fatal("20 dial-back checks with our nonce penalised their address")
	}
	if c, err := s.dial(t); err != nil {
		t.Fatalf("a login after 20 dial-back checks: %v", err)
	} else {
		c.Close()
	}
	// On a share nobody logged in to from here: a login exempts its
	// address from penalties for connections closed before trying.
	s2 := startTestShare(t, t.TempDir(), func(o *Options) { o.Routes = &stubRoutes{conns: map[string]ssh.Conn{}} })
	for range 20 {
		_, _ = ssh.Dial("tcp", s2.addr, &ssh.ClientConfig{ // refused once the address is blocked
			User: sshstream.DialBackUser + "theirs", HostKeyCallback: ssh.FixedHostKey(s2.srv.HostKey()), Timeout: 10 * time.Second,
		})
	}
	testenv.WaitFor(t, 5*time.Second, "the address penalised for 20 dial-backs with an unknown nonce", func() bool {
		_, blocked := s2.srv.gate.pen.blocked(src, time.Now())
		return blocked
	})
}
