// Package wanproxy is a TCP proxy that makes loopback look like the
// internet between two homes: every byte is held for a one-way delay and
// each direction is limited to a rate, as a long, narrow link would. The
// WAN benchmark and tests put it between dsftp (or sshfs) and a share.
// UDPProxy (udp.go) does the same for datagrams (QUIC), with a bounded
// queue that drops.
//
// It is a test fixture: it listens on loopback and forwards only to the
// target it was given.
package wanproxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Link describes one direction of the simulated path.
type Link struct {
	// Delay is the one-way latency added to every byte (RTT = 2 × Delay).
	Delay time.Duration
	// Rate is the bandwidth in bytes per second; 0 means unlimited.
	Rate int64
}

// chunkSize is the most bytes read in one go; a chunk is delayed and
// paced as a unit, so it also bounds how bursty the pacing is.
const chunkSize = 16 << 10

// maxQueued bounds the bytes a direction holds in flight (the link's
// buffer): a sender that outruns the rate is slowed by TCP backpressure
// rather than by memory.
const maxQueued = 8 << 20

// Proxy forwards connections from its listener to Target through a Link
// in each direction.
type Proxy struct {
	Target string
	Link   Link

	ln   net.Listener
	wg   sync.WaitGroup
	down atomic.Int64 // bytes delivered to clients
	up   atomic.Int64 // bytes delivered to the target
}

// BytesToClients is the number of bytes the proxy delivered from the
// target to its clients so far (what a client downloaded, with protocol
// overhead): tests bound over-fetching with it.
func (p *Proxy) BytesToClients() int64 { return p.down.Load() }

// BytesToTarget is the number of bytes delivered the other way.
func (p *Proxy) BytesToTarget() int64 { return p.up.Load() }

// New returns a proxy to target with the same link both ways.
func New(target string, link Link) *Proxy { return &Proxy{Target: target, Link: link} }

// Listen binds 127.0.0.1:0.
func (p *Proxy) Listen() error { return p.ListenAt("127.0.0.1:0") }

// ListenAt binds addr: a test can have the proxy appear on an address a
// client was refused at before.
func (p *Proxy) ListenAt(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p.ln = ln
	return nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Serve runs the proxy until the test ends (on 127.0.0.1:0 unless Listen
// or ListenAt bound it before) and returns it. Cleanups run last first:
// clients set up after Serve are closed before the proxy stops.
func (p *Proxy) Serve(t testing.TB) *Proxy {
	t.Helper()
	if p.ln == nil {
		if err := p.Listen(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("wanproxy: %v", err)
		}
	})
	return p
}

// Run serves until ctx ends, then closes every connection it made.
func (p *Proxy) Run(ctx context.Context) error {
	if p.ln == nil {
		if err := p.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); p.ln.Close() }()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(ctx, c)
		}()
	}
}

func (p *Proxy) forward(ctx context.Context, client net.Conn) {
	defer client.Close()
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", p.Target)
	if err != nil {
		return
	}
	defer server.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); server.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.Link.pipe(server, client, &p.up) }()
	go func() { defer wg.Done(); p.Link.pipe(client, server, &p.down) }()
	wg.Wait()
}

// packet is a chunk of bytes and when it may leave.
type packet struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst through the link, then half-closes dst; count
// adds up the bytes delivered.
func (l Link) pipe(dst, src net.Conn, count *atomic.Int64) {
	q := make(chan packet, maxQueued/chunkSize)
	go func() {
		defer close(q)
		for {
			b := make([]byte, chunkSize)
			n, err := src.Read(b)
			if n > 0 {
				q <- packet{b: b[:n], due: time.Now().Add(l.Delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	// The link sends one chunk after another: a chunk leaves once its
	// delay is over and the previous chunk is through at the rate.
	var free time.Time // when the link finished sending the last chunk
	for pk := range q {
		start := pk.due
		if free.After(start) {
			start = free
		}
		if l.Rate > 0 {
			free = start.Add(time.Duration(int64(len(pk.b)) * int64(time.Second) / l.Rate))
		} else {
			free = start
		}
		if wait := time.Until(free); wait > 0 {
			time.Sleep(wait)
		}
		n, err := dst.Write(pk.b)
		count.Add(int64(n))
		if err != nil {
			src.Close()
			for range q { // let the reader end
			}
			return
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		dst.Close()
	}
}
