//go:build linux

package pool

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// conns is the peer's live connections and whether a dial is under way.
func (p *Pool) connsOf(id string) (live []*conn, dialing bool) {
	p.mu.Lock()
	g := p.groups[id]
	p.mu.Unlock()
	if g == nil {
		return nil, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		if !c.dead.Load() {
			live = append(live, c)
		}
	}
	return live, g.dialing != nil
}

// A warmed peer is connected before anyone asks, and its first request
// runs on that connection: no handshake in front of it.
func TestWarmConnectsAhead(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}})
	peer := peerOf(t, s)
	p.Warm(peer)
	var warm []*conn
	testenv.WaitFor(t, 15*time.Second, "Warm to connect to the peer", func() bool {
		warm, _ = p.connsOf(peer.ID)
		return len(warm) > 0
	})
	p.Warm(peer) // connected already: no second dial
	if live, dialing := p.connsOf(peer.ID); len(live) != 1 || dialing {
		t.Fatalf("second Warm: %d connections, dialing %v; want the one, no dial", len(live), dialing)
	}
	ctx := testenv.Context(t, time.Minute)
	if _, err := p.ReadDir(ctx, peer, ""); err != nil {
		t.Fatal(err)
	}
	live, _ := p.connsOf(peer.ID)
	if len(live) != 1 || live[0] != warm[0] {
		t.Fatalf("first listing: %d connections, want it on the warm one", len(live))
	}
}

// Warm dials no more than WarmPeers peers; the rest wait for a request.
func TestWarmCap(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newPool(t, Options{Timeout: 5 * time.Second, Identities: []ssh.Signer{s.Client.Signer}, WarmPeers: 1, Logger: log})
	a := peerOf(t, s)
	b := a.Clone()
	b.ID, b.Name = a.ID+"-b", "second"
	p.Warm(a)
	testenv.WaitFor(t, 15*time.Second, "a connection to the first peer", func() bool {
		live, _ := p.connsOf(a.ID)
		return len(live) > 0
	})
	p.Warm(b)
	testenv.WaitFor(t, 15*time.Second, "Warm to pass over the second peer", func() bool {
		return strings.Contains(logs.String(), `msg="not connecting ahead: enough peers connected" peer=`+peerLabel(b))
	})
	if live, dialing := p.connsOf(b.ID); len(live) > 0 || dialing {
		t.Fatal("Warm dialed a second peer with WarmPeers 1")
	}
	// A request still connects the peer beyond the cap.
	if _, err := p.ReadDir(testenv.Context(t, time.Minute), b, ""); err != nil {
		t.Fatal(err)
	}
	if live, _ := p.connsOf(b.ID); len(live) != 1 {
		t.Fatalf("after a request: %d connections to the second peer, want 1", len(live))
	}
}

// Warm on a closed pool, or with WarmPeers negative, dials nothing.
func TestWarmOff(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	off := newPool(t, Options{Identities: []ssh.Signer{s.Client.Signer}, WarmPeers: -1})
	off.Warm(peer)
	closed := newPool(t, Options{Identities: []ssh.Signer{s.Client.Signer}})
	closed.Close()
	closed.Warm(peer)
	for name, p := range map[string]*Pool{"WarmPeers -1": off, "closed": closed} {
		if live, dialing := p.connsOf(peer.ID); len(live) > 0 || dialing {
			t.Errorf("%s: Warm dialed", name)
		}
	}
}
