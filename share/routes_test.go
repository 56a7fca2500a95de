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
	"testing"
	"time"

	"github.com/dsftp/dsftp/share/sshstream"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// stubRoutes stands in for the pool's route table: it accepts an offer
// only from the one client key that belongs to the offered host key, and
// relays only to a held share; what it relays is recorded.
type stubRoutes struct {
	owner map[string]string // host key fp -> client key fp of that member

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
func (r *stubRoutes) DialBack(clientKey string, addrs []string) ([]string, error) {
	return addrs, nil
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

// TestDialBackLimits: the share checks at most 4 addresses at a time and
// one check per connection every 10 s, and answers with what its Routes
// reached.
func TestDialBackLimits(t *testing.T) {
	t.Parallel()
	s := startTestShare(t, t.TempDir(), func(o *Options) { o.Routes = &stubRoutes{conns: map[string]ssh.Conn{}} })
	c, err := s.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(addrs ...string) (bool, string) {
		t.Helper()
		ok, p, err := c.SendRequest(sshstream.RequestDialBack, true, ssh.Marshal(sshstream.DialBackRequest{Addrs: strings.Join(addrs, "\n")}))
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
	if ok, _ := ask("a:1", "b:1", "c:1", "d:1", "e:1"); ok {
		t.Error("5 addresses were checked at once")
	}
	if ok, got := ask("a:1", "[2001:db8::1]:2"); !ok || got != "a:1\n[2001:db8::1]:2" {
		t.Errorf("check of 2 addresses: ok=%v reached %q", ok, got)
	}
	if ok, _ := ask("a:1"); ok {
		t.Error("a second check on the connection within 10 s was done")
	}
}
