package wanproxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// UDP mode: the same link for datagrams (QUIC). Each client address is a
// flow with its own socket towards the target, so the target sees one
// source per client, as behind a NAT. Unlike the TCP mode, nothing slows
// a sender down but loss: a datagram that finds the link's queue full is
// dropped, as a router drops it, and the sender's congestion control has
// to find the rate.

const (
	// maxFlows bounds the clients served at once; datagrams from more are
	// dropped.
	maxFlows = 64
	// maxDatagram is the largest datagram forwarded (UDP's limit).
	maxDatagram = 64 << 10
	// maxPending bounds the datagrams a direction holds, in the queue and
	// in flight, whatever their size.
	maxPending = 16384
	// minQueue is the smallest default queue: a few full-size datagrams
	// even on a slow link.
	minQueue = 64 << 10
)

// UDPProxy forwards datagrams from clients to Target through a Link in
// each direction.
type UDPProxy struct {
	Target string
	Link   Link
	// Queue bounds the bytes waiting for the link in each direction of a
	// flow (the router's buffer); a datagram that would exceed it is
	// dropped. Zero means one round trip at the rate (the bandwidth-delay
	// product), at least 64 KiB.
	Queue int64

	pc      *net.UDPConn
	mu      sync.Mutex
	flows   map[string]*udpFlow
	wg      sync.WaitGroup
	down    atomic.Int64
	up      atomic.Int64
	dropped atomic.Int64
}

// NewUDP returns a UDP proxy to target with the same link both ways.
func NewUDP(target string, link Link) *UDPProxy {
	return &UDPProxy{Target: target, Link: link}
}

// BytesToClients is the number of bytes delivered from the target to the
// clients so far.
func (p *UDPProxy) BytesToClients() int64 { return p.down.Load() }

// BytesToTarget is the number of bytes delivered the other way.
func (p *UDPProxy) BytesToTarget() int64 { return p.up.Load() }

// Dropped is the number of datagrams dropped so far, both ways: queue
// full, or too many flows.
func (p *UDPProxy) Dropped() int64 { return p.dropped.Load() }

// Listen binds 127.0.0.1:0.
func (p *UDPProxy) Listen() error {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	p.pc = pc
	return nil
}

// Addr is the address clients send to.
func (p *UDPProxy) Addr() string { return p.pc.LocalAddr().String() }

// Run serves until ctx ends, then closes every socket it made.
func (p *UDPProxy) Run(ctx context.Context) error {
	if p.pc == nil {
		if err := p.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	target, err := net.ResolveUDPAddr("udp", p.Target)
	if err != nil {
		return err
	}
	p.flows = map[string]*udpFlow{}
	go func() { <-ctx.Done(); p.pc.Close() }()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.pc.ReadFromUDP(buf)
		if err != nil {
			p.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		f := p.flow(ctx, from, target)
		if f == nil {
			p.dropped.Add(1)
			continue
		}
		f.up.send(buf[:n])
	}
}

// udpFlow is one client's datagrams: its socket towards the target and a
// link each way.
type udpFlow struct {
	up, down *udpLink
}

// flow returns the client's flow, made on its first datagram; nil when
// there are too many or the target cannot be reached.
func (p *UDPProxy) flow(ctx context.Context, client, target *net.UDPAddr) *udpFlow {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.flows[client.String()]; ok {
		return f
	}
	if len(p.flows) >= maxFlows {
		return nil
	}
	tc, err := net.DialUDP("udp", nil, target)
	if err != nil {
		return nil
	}
	queue := p.Queue
	if queue <= 0 {
		queue = max(minQueue, p.Link.Rate*2*int64(p.Link.Delay)/int64(time.Second))
	}
	f := &udpFlow{
		up: newUDPLink(p.Link, queue, &p.up, &p.dropped, func(b []byte) error {
			_, err := tc.Write(b)
			return err
		}),
		down: newUDPLink(p.Link, queue, &p.down, &p.dropped, func(b []byte) error {
			_, err := p.pc.WriteToUDP(b, client)
			return err
		}),
	}
	p.flows[client.String()] = f
	p.wg.Add(3)
	go func() { defer p.wg.Done(); f.up.run(ctx) }()
	go func() { defer p.wg.Done(); f.down.run(ctx) }()
	go func() {
		defer p.wg.Done()
		context.AfterFunc(ctx, func() { tc.Close() })
		buf := make([]byte, maxDatagram)
		for {
			n, err := tc.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				f.down.send(buf[:n])
			}
		}
	}()
	return f
}

// udpLink is one direction of a flow: datagrams wait their delay, then
// for the link to be free at the rate; one that finds more than queue
// bytes waiting for the link is dropped.
type udpLink struct {
	link    Link
	queue   int64
	count   *atomic.Int64
	dropped *atomic.Int64
	write   func([]byte) error
	q       chan packet

	mu   sync.Mutex
	free time.Time // when the link is done with the datagrams accepted so far
}

func newUDPLink(l Link, queue int64, count, dropped *atomic.Int64, write func([]byte) error) *udpLink {
	return &udpLink{link: l, queue: queue, count: count, dropped: dropped, write: write,
		q: make(chan packet, maxPending)}
}

// send schedules a copy of b, or drops it. Its time on the link is fixed
// now: the datagrams ahead of it decide when the link is free.
func (u *udpLink) send(b []byte) {
	now := time.Now()
	u.mu.Lock()
	due := now.Add(u.link.Delay)
	start := due
	if u.free.After(start) {
		start = u.free
	}
	var waiting int64 // bytes ahead of it at the link when it gets there
	if u.link.Rate > 0 {
		waiting = int64(start.Sub(due)) * u.link.Rate / int64(time.Second)
	}
	if waiting+int64(len(b)) > u.queue {
		u.mu.Unlock()
		u.dropped.Add(1)
		return
	}
	done := start
	if u.link.Rate > 0 {
		done = start.Add(time.Duration(int64(len(b)) * int64(time.Second) / u.link.Rate))
	}
	select {
	case u.q <- packet{b: append([]byte(nil), b...), due: done}:
		u.free = done
	default:
		u.dropped.Add(1)
	}
	u.mu.Unlock()
}

// run delivers the scheduled datagrams in order, each once the link is
// through with it.
func (u *udpLink) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case pk := <-u.q:
			if wait := time.Until(pk.due); wait > 0 {
				time.Sleep(wait)
			}
			u.count.Add(int64(len(pk.b)))
			_ = u.write(pk.b) // a datagram lost on loopback is lost: UDP
		}
	}
}
