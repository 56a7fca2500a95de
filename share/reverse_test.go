//go:build linux

package share

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// reversePair connects a holder (SSH server side) to srv's ServeReverse
// (client side, as the member that dialed out); it returns the holder's
// end of the connection.
func reversePair(t *testing.T, srv *Server, testKey ssh.Signer) ssh.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	holder := make(chan ssh.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			holder <- nil
			return
		}
		cfg := &ssh.ServerConfig{NoClientAuth: true}
		cfg.AddHostKey(testKey)
		sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
		if err != nil {
			holder <- nil
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "no")
			}
		}()
		holder <- sc
	}()
	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "c",
		HostKeyCallback: ssh.FixedHostKey(testKey.PublicKey()), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	go srv.ServeReverse(client.RemoteAddr(), "SHA256:holder", client.HandleChannelOpen(reverseChannel))
	sc := <-holder
	if sc == nil {
		t.Fatal("holder handshake failed")
	}
	return sc
}

// reverseChannel is the channel type the test's holder opens; the share
// serves whatever channels it is handed.
const reverseChannel = "test-sftp"

func openReverseSFTP(sc ssh.Conn, conn uint32) (*sftp.Client, error) {
	ch, reqs, err := sc.OpenChannel(reverseChannel, ssh.Marshal(reverseOpen{Conn: conn}))
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return sftp.NewClientPipe(ch, ch)
}

// TestServeReverseLimits: SFTP channels over a reverse connection get the
// view, confinement and limits of a login: hidden files stay hidden,
// nothing outside the share is reached, sessions per connection and
// connections per member are capped, and a malformed open is refused.
func TestServeReverseLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	if err := os.WriteFile(filepath.Join(f.share, ".hidden"), []byte("h"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startTestShare(t, f.share, func(o *Options) { o.MaxSessionsPerConn = 2; o.MaxConnsPerKey = 2 })
	sc := reversePair(t, ts.srv, ts.client.Signer)

	cl, err := openReverseSFTP(sc, 1)
	if err != nil {
		t.Fatalf("sftp channel: %v", err)
	}
	defer cl.Close()
	if _, err := cl.Stat(".hidden"); err == nil {
		t.Error("a hidden file is visible over the reverse route")
	}
	rel, _ := filepath.Rel(f.share, f.secret)
	for _, p := range []string{rel, "out", "chain1", f.secret} {
		if got, err := readAllRemote(cl, p); err == nil || strings.Contains(string(got), secretText) {
			t.Errorf("read %s outside the share over the reverse route: %q, %v", p, got, err)
		}
	}
	if _, err := cl.ReadDir("."); err != nil {
		t.Errorf("list the share: %v", err)
	}

	second, err := openReverseSFTP(sc, 1)
	if err != nil {
		t.Fatalf("second session of connection 1: %v", err)
	}
	defer second.Close()
	if _, _, err := sc.OpenChannel(reverseChannel, ssh.Marshal(reverseOpen{Conn: 1})); err == nil {
		t.Error("a third session on a connection with MaxSessionsPerConn 2 was accepted")
	}
	other, err := openReverseSFTP(sc, 2)
	if err != nil {
		t.Fatalf("connection 2: %v", err)
	}
	defer other.Close()
	if _, _, err := sc.OpenChannel(reverseChannel, ssh.Marshal(reverseOpen{Conn: 3})); err == nil {
		t.Error("a third connection with MaxConnsPerKey 2 was accepted")
	}
	if _, _, err := sc.OpenChannel(reverseChannel, []byte{1}); err == nil {
		t.Error("a malformed sftp channel open was accepted")
	}
	// Once connection 2's session ends, its slot is free again.
	other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := openReverseSFTP(sc, 4)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection 4 after connection 2 ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
