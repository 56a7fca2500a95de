//go:build linux

package share

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dsftp/dsftp/share/limits"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// stubExtensions serve a request "test-echo" (replies with its payload),
// "test-hold" (HoldReverse while live is set) and channels "test-pipe"
// (echo, Busy while open); they record what the share handed over.
type stubExtensions struct {
	live   atomic.Bool
	closed atomic.Int64

	mu    sync.Mutex
	infos []ConnInfo
}

func (s *stubExtensions) Conn(c ConnInfo) ConnExtension {
	s.mu.Lock()
	s.infos = append(s.infos, c)
	s.mu.Unlock()
	return &stubConn{s: s, c: c}
}

type stubConn struct {
	s  *stubExtensions
	c  ConnInfo
	wg sync.WaitGroup
}

func (c *stubConn) Request(req *ssh.Request) bool {
	switch req.Type {
	case "test-echo":
		_ = req.Reply(true, req.Payload)
	case "test-hold":
		c.c.HoldReverse("SHA256:held", c.s.live.Load)
		_ = req.Reply(true, nil)
	default:
		return false
	}
	return true
}

func (c *stubConn) Channel(nc ssh.NewChannel) bool {
	if nc.ChannelType() != "test-pipe" {
		return false
	}
	c.wg.Go(func() {
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		defer c.c.Busy()()
		_, _ = io.Copy(ch, ch)
		ch.Close()
	})
	return true
}

func (c *stubConn) Close() {
	c.wg.Wait()
	c.s.closed.Add(1)
}

// TestExtensions: a logged-in connection's global requests and channel
// types other than "session" go to the Extensions, which see the login
// key; what they do not take is refused. A channel they hold Busy keeps
// the connection from being closed as idle, and so does HoldReverse while
// its member lives; Close is called once per connection when it ends.
func TestExtensions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testExtensions)
}

// testExtensions runs in a bubble, over in-memory connections: the idle
// timeouts it waits out pass on the bubble's clock.
func testExtensions(t *testing.T) {
	ext := &stubExtensions{}
	ext.live.Store(true)
	const idle = 300 * time.Millisecond
	s := startPipeShare(t, t.TempDir(), func(o *Options) { o.Extensions = ext; o.IdleTimeout = idle })
	c, err := s.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	synctest.Wait() // the share has handed the connection to the extensions
	ext.mu.Lock()
	info := ext.infos[0]
	ext.mu.Unlock()
	if want := ssh.FingerprintSHA256(s.client.Signer.PublicKey()); info.ClientKey != want || info.Conn == nil || info.Log == nil {
		t.Fatalf("ConnInfo: key %q conn %v log %v; want key %q, a connection and a logger", info.ClientKey, info.Conn, info.Log, want)
	}
	if ok, reply, err := c.SendRequest("test-echo", true, []byte("hi")); err != nil || !ok || string(reply) != "hi" {
		t.Errorf("an extension's request: ok=%v reply=%q err=%v", ok, reply, err)
	}
	if ok, _, err := c.SendRequest("tcpip-forward", true, nil); err != nil || ok {
		t.Errorf("a request no extension takes: ok=%v err=%v; want refused", ok, err)
	}
	if _, _, err := c.OpenChannel("direct-tcpip", nil); err == nil || !strings.Contains(err.Error(), "only sftp sessions are served") {
		t.Errorf("a channel no extension takes: %v; want refused", err)
	}
	ch, reqs, err := c.OpenChannel("test-pipe", nil)
	if err != nil {
		t.Fatalf("an extension's channel: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	if _, err := ch.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ch, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the extension's channel: %q, %v", buf, err)
	}
	// Busy: the connection outlives many idle timeouts.
	time.Sleep(10 * idle)
	if _, _, err := c.SendRequest("test-echo", true, nil); err != nil {
		t.Fatalf("a connection with a busy extension channel was closed as idle: %v", err)
	}
	ch.Close()
	waitClosed(t, c, "the connection, idle once its channel closed")
	testenv.WaitFor(t, 5*time.Second, "Close of the first connection's extension", func() bool { return ext.closed.Load() == 1 })

	// HoldReverse: kept while live, closed once not.
	h, err := s.dial(t)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if ok, _, err := h.SendRequest("test-hold", true, nil); err != nil || !ok {
		t.Fatalf("hold: ok=%v err=%v", ok, err)
	}
	time.Sleep(10 * idle)
	if _, _, err := h.SendRequest("test-echo", true, nil); err != nil {
		t.Fatalf("a held connection whose member lives was closed: %v", err)
	}
	ext.live.Store(false)
	waitClosed(t, h, "the held connection, its member gone")
	testenv.WaitFor(t, 5*time.Second, "Close of both connections' extensions", func() bool { return ext.closed.Load() == 2 })
}

// waitClosed waits up to 5 s for the share to close c.
func waitClosed(t *testing.T, c *ssh.Client, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s is still open after 5 s", what)
	}
}

// TestProbeNoPenalty: a connection that stops after the "none" attempt
// with a user name the share's Probe expects costs its address nothing,
// however often; one with a name it does not expect is an ordinary
// connection closed before trying to log in, and enough of them block
// the address.
func TestProbeNoPenalty(t *testing.T) {
	t.Parallel()
	var arrived atomic.Int64
	probe := func(user string) bool {
		if user != "probe-ours" {
			return false
		}
		arrived.Add(1)
		return true
	}
	s := startTestShare(t, t.TempDir(), func(o *Options) { o.Probe = probe })
	src := limits.SourceOf(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check := func(addr string, key ssh.PublicKey, user string) error {
		_, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
			User: user, HostKeyCallback: ssh.FixedHostKey(key), Timeout: 10 * time.Second,
		})
		return err
	}
	for range 20 {
		if err := check(s.addr, s.srv.HostKey(), "probe-ours"); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("a probe without keys: %v; want the login refused", err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "20 probes", func() bool { return arrived.Load() == 20 })
	if _, blocked := s.srv.gate.Blocked(src, time.Now()); blocked {
		t.Fatal("20 expected probes penalised their address")
	}
	if c, err := s.dial(t); err != nil {
		t.Fatalf("a login after 20 probes: %v", err)
	} else {
		c.Close()
	}
	// On a share nobody logged in to from here: a login exempts its
	// address from penalties for connections closed before trying.
	s2 := startTestShare(t, t.TempDir(), func(o *Options) { o.Probe = probe })
	for range 20 {
		_ = check(s2.addr, s2.srv.HostKey(), "probe-theirs") // refused once the address is blocked
	}
	testenv.WaitFor(t, 5*time.Second, "the address penalised for 20 unexpected probes", func() bool {
		_, blocked := s2.srv.gate.Blocked(src, time.Now())
		return blocked
	})
}
