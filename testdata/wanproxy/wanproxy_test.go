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

// udpEcho echoes every datagram on loopback.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

func startUDP(t *testing.T, link Link, queue int64) *UDPProxy {
	t.Helper()
	p := NewUDP(udpEcho(t), link)
	p.Queue = queue
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

// TestUDPDelayRateIntegrity: datagrams come back unchanged and in order,
// no sooner than the delay both ways and the rate allow, and none is
// dropped while the queue holds them all.
func TestUDPDelayRateIntegrity(t *testing.T) {
	const n, size = 200, 1200
	link := Link{Delay: 20 * time.Millisecond, Rate: 1 << 20}
	p := startUDP(t, link, n*size)
	c, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Twenty in flight at a time: a burst of all would overflow the
	// sockets' buffers on the way, which is the kernel's loss, not the
	// link's.
	const window = 20
	send := func(i int) {
		if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i := range window {
		send(i)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2*size)
	for i := range n {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v (dropped %d)", i, err, p.Dropped())
		}
		if k != size || buf[0] != byte(i) || buf[k-1] != byte(i) {
			t.Fatalf("datagram %d: %d bytes starting %d; want %d bytes of %d", i, k, buf[0], size, i)
		}
		if i+window < n {
			send(i + window)
		}
	}
	took := time.Since(start)
	// Every byte crosses the 1 MiB/s link down, after both delays.
	if min := 2*link.Delay + time.Duration(n*size)*time.Second/time.Duration(link.Rate); took < min {
		t.Errorf("%d datagrams echoed in %v; the link cannot be faster than %v", n, took, min)
	}
	if d := p.Dropped(); d != 0 {
		t.Errorf("dropped %d datagrams with room for all", d)
	}
	if got := p.BytesToClients(); got != n*size {
		t.Errorf("BytesToClients = %d, want %d", got, n*size)
	}
	t.Logf("%d × %d bytes echoed in %v", n, size, took.Round(time.Millisecond))
}

// TestUDPQueueDrops: a burst beyond the queue is dropped, as a router's
// full buffer drops it; what the queue held gets through.
func TestUDPQueueDrops(t *testing.T) {
	const n, size, queue = 100, 1000, 20 * 1000
	p := startUDP(t, Link{Delay: 5 * time.Millisecond, Rate: 100 << 10}, queue)
	c, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	// What passes is back within 0.7 s (30 KB up and down at 100 KiB/s).
	c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	got := 0
	buf := make([]byte, 2*size)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
		got++
	}
	// The burst arrives within a few milliseconds, in which 100 KiB/s
	// sends about one datagram: the queue's 20 and a few more pass.
	if got == 0 || got > 30 {
		t.Errorf("%d of %d datagrams came back through a queue of %d bytes; want 1 to 30", got, n, queue)
	}
	if p.Dropped() < n-30 {
		t.Errorf("Dropped = %d, want at least %d", p.Dropped(), n-30)
	}
}
