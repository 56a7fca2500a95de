package route

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// TestOpenChannelTimeout: a member that never answers a channel opened
// over its connection does not hold the opener: the open fails after the
// timeout and the connection is closed.
func TestOpenChannelTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(testenv.NewSigner(t))
	type server struct {
		conn  *ssh.ServerConn
		chans <-chan ssh.NewChannel
		err   error
	}
	got := make(chan server, 1)
	go func() {
		sc, chans, reqs, err := ssh.NewServerConn(a, cfg)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		got <- server{sc, chans, err}
	}()
	cc, cchans, creqs, err := ssh.NewClientConn(b, "pipe", &ssh.ClientConfig{User: "x", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(creqs)
	// The client (the member holding a reverse connection) sees the
	// open and never answers it.
	go func() {
		for range cchans {
		}
	}()
	s := <-got
	if s.err != nil {
		t.Fatal(s.err)
	}
	go func() {
		for range s.chans {
		}
	}()
	start := time.Now()
	_, err = openChannel(s.conn, ChannelShare, nil, 300*time.Millisecond)
	took := time.Since(start)
	if !errors.Is(err, errOpenTimeout) {
		t.Fatalf("open with no answer: %v, want errOpenTimeout", err)
	}
	if took > 5*time.Second {
		t.Fatalf("open with no answer returned after %v, want about 300ms", took)
	}
	done := make(chan error, 1)
	go func() { done <- cc.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection of a member that never answered stayed open")
	}
}
