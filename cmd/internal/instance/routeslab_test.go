//go:build linux

package instance

// An in-process channel of members for the route tests: real shares
// (share.Server on loopback) and pools, one registry standing in for the
// adverts everyone holds. A member is made unreachable by advertising an
// address where nothing answers.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

type routeLab struct {
	t    testing.TB
	reg  *peers.Registry
	logs *testenv.SyncBuffer
	log  *slog.Logger

	mu      sync.Mutex
	members map[string]*labMember
}

type labMember struct {
	name      string
	dir       string
	srv       *share.Server
	pool      *pool.Pool
	routes    *route.Table
	reachable atomic.Bool
	stop      context.CancelFunc
	done      chan struct{}

	mu   sync.Mutex
	peer peers.Peer
}

func newRouteLab(t testing.TB) *routeLab {
	l := &routeLab{t: t, reg: peers.NewRegistry(""), logs: &testenv.SyncBuffer{}, members: map[string]*labMember{}}
	l.log = slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", l.logs.String())
		}
	})
	return l
}

// memberOpts shape one member of the lab.
type memberOpts struct {
	// advertise replaces the share's own address in the advert (a proxy
	// in front of it, or an address where nothing answers).
	advertise string
	relayRate int64
	// idleTimeout is the share's IdleTimeout; zero is the default.
	idleTimeout time.Duration
	keepRoutes  bool // keep reverse connections (while unreachable)
	conns       int  // reverse connections to keep
	pool        func(*pool.Options)
}

// add starts member name sharing dir; reachable says what its advert
// claims.
func (l *routeLab) add(name, dir string, reachable bool, o memberOpts) *labMember {
	t := l.t
	t.Helper()
	m := &labMember{name: name, dir: dir, done: make(chan struct{})}
	m.reachable.Store(reachable)
	m.routes = route.NewTable(l.reg, l.log.With("member", name))
	log := l.log.With("member", name)
	rate := o.relayRate
	if rate == 0 {
		rate = -1
	}
	so := share.Options{Dir: dir, Listen: "127.0.0.1:0", Authorizer: l.reg, IdleTimeout: o.idleTimeout, Logger: log, MaxConns: 1024, MaxConnsPerKey: 64, MaxConnsPerSource: 1024,
		// Every member dials from 127.0.0.1: lift the per-source limits.
		MaxStartups: share.Startups{Start: 1024, Rate: 30, Full: 2048}, MaxStartupsPerSource: 1024}
	wireRoutes(&so, m.routes, route.ServerOptions{RelayRate: rate})
	srv, err := share.New(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	m.srv = srv
	po := pool.Options{Timeout: 3 * time.Second, Routes: m.routes, SelfID: srv.Fingerprint(), User: "dsftp",
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"), Logger: log}
	if o.pool != nil {
		o.pool(&po)
	}
	if m.pool, err = pool.New(po); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addrs()[0].String()
	if o.advertise != "" {
		addr = o.advertise
	}
	m.peer = peers.Peer{ID: srv.Fingerprint(), Name: name, Addrs: []string{addr}, User: "dsftp", HostKey: srv.HostKey(),
		ClientKeys: []ssh.PublicKey{m.pool.PublicKey()}, Source: "discord", Unreachable: !reachable}
	l.reg.Upsert(m.peer)
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx) })
	if o.keepRoutes {
		wg.Go(func() {
			_ = route.KeepReverse(ctx, route.ReverseOptions{
				Dialer: m.pool, Timeout: m.pool.Timeout(), Logger: log,
				HostKey: srv.Fingerprint(), Serve: srv.ServeStream, ServeSFTP: srv.ServeReverse,
				Needed:  func() bool { return !m.reachable.Load() },
				Members: l.reg.List, Conns: o.conns,
				OnChange: func(via []string) { m.advert(l, func(p *peers.Peer) { p.Via = via }) },
			})
		})
	}
	go func() { wg.Wait(); close(m.done) }()
	l.mu.Lock()
	l.members[name] = m
	l.mu.Unlock()
	t.Cleanup(m.kill)
	return m
}

// advert changes m's advert and posts it.
func (m *labMember) advert(l *routeLab, change func(*peers.Peer)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	change(&m.peer)
	l.reg.Upsert(m.peer)
}

// kill ends the member as a crash would: every connection closes, its
// advert stays.
func (m *labMember) kill() {
	m.stop()
	m.pool.Close()
	<-m.done
}

func (l *routeLab) member(name string) *labMember {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.members[name]
}

// entry is what the channel says about member name now.
func (l *routeLab) entry(name string) peers.Peer {
	e, ok := l.reg.ByID(l.member(name).srv.Fingerprint())
	if !ok {
		l.t.Fatalf("%s is not in the registry", name)
	}
	return e.Peer
}

// waitFor polls cond until it holds or d passes, and returns how long
// that took.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.WaitFor(t, d, what, cond)
	return time.Since(start)
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// shareDir makes a directory holding file name with data.
func shareDir(t testing.TB, name string, data []byte) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readFile reads rel of peer through m's pool.
func (m *labMember) readFile(ctx context.Context, peer peers.Peer, rel string) ([]byte, error) {
	r, err := m.pool.OpenReader(ctx, peer, rel, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// cutProxy forwards TCP to a target while open; it can refuse new
// connections and cut the ones it carries, as a router or link would.
type cutProxy struct {
	ln     net.Listener
	target string
	open   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t testing.TB, target string, open bool) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.open.Store(open)
	go p.run()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) run() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.open.Load() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// cut closes every connection the proxy carries.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
