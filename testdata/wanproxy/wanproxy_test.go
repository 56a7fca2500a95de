package wanproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection on loopback.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, link Link) *Proxy {
	t.Helper()
	p := New(echoServer(t), link)
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// TestDelayAndIntegrity: bytes arrive unchanged, and a round trip takes
// at least twice the one-way delay (the proxy can only add time).
func TestDelayAndIntegrity(t *testing.T) {
	p := start(t, Link{Delay: 25 * time.Millisecond, Rate: 4 << 20})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 300<<10)
	rand.Read(msg)
	start := time.Now()
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !bytes.Equal(got, msg) {
		t.Fatal("echo through the proxy differs")
	}
	// 300 KiB at 4 MiB/s each way, plus 2 × 25 ms.
	if min := 50*time.Millisecond + 2*time.Duration(len(msg))*time.Second/(4<<20)/2; took < min {
		t.Errorf("round trip of %d bytes took %v; the link cannot be faster than %v", len(msg), took, min)
	}
	t.Logf("300 KiB echoed in %v", took.Round(time.Millisecond))
}

// TestCloseEnds: closing the client ends the forwarding, and Run returns
// when its context ends.
func TestCloseEnds(t *testing.T) {
	p := start(t, Link{Delay: time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("echo: %q %v", b, err)
	}
	c.Close()
}
