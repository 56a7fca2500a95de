//go:build linux

package pool

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"github.com/dsftp/dsftp/testdata/wanproxy"
	"golang.org/x/crypto/ssh"
)

// silentBound is how long after a peer went silent it may still be
// thought alive, with the default Timeout.
const silentBound = 15 * time.Second

// TestSilentPeerIsSuspected: a peer that goes silent without closing
// anything (OpenSSH frozen with SIGSTOP: the kernel still completes TCP
// handshakes and acknowledges, nothing answers) is reported to the
// Suspects within 15 s with the default Timeout, without anyone reading;
// a request in flight fails with ETIMEDOUT, and so does the next one, at
// once; resumed, a dial of its own reaches it and reports it heard.
func TestSilentPeerIsSuspected(t *testing.T) {
	s := testenv.StartSSHD(t, t.TempDir())
	peer := peerOf(t, s)
	peer.Source = peers.SourceLAN
	sus := &suspects{ids: map[string]time.Time{}}
	p := newPool(t, Options{Identities: []ssh.Signer{s.Client.Signer}, Suspects: sus})
	if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Signal(syscall.SIGCONT) })
	type result struct {
		err  error
		took time.Duration
	}
	inFlight := make(chan result, 1)
	go func() {
		_, err := p.Lstat(context.Background(), peer, "")
		inFlight <- result{err, time.Since(stopped)}
	}()

	testenv.WaitFor(t, 2*silentBound, "the silent peer to be reported", func() bool {
		_, ok := sus.get(peer.ID)
		return ok
	})
	took := time.Since(stopped)
	t.Logf("silent peer reported %v after it froze", took.Round(time.Millisecond))
	if took > silentBound {
		t.Errorf("silent peer reported after %v, want at most %v", took, silentBound)
	}
	if since, _ := sus.get(peer.ID); since.Before(stopped) {
		t.Errorf("reported as failing since %v, before it froze at %v", since, stopped)
	}
	select {
	case r := <-inFlight:
		t.Logf("the request in flight failed %v after the freeze: %v", r.took.Round(time.Millisecond), r.err)
		if Errno(r.err) != syscall.ETIMEDOUT {
			t.Errorf("request in flight: %v (errno %v), want ETIMEDOUT", r.err, Errno(r.err))
		}
	case <-time.After(silentBound):
		t.Fatal("the request in flight did not end")
	}
	start := time.Now()
	_, err := p.Lstat(context.Background(), peer, "")
	if Errno(err) != syscall.ETIMEDOUT {
		t.Errorf("request after the peer was reported: %v (errno %v), want ETIMEDOUT", err, Errno(err))
	}
	t.Logf("the request after it failed in %v", time.Since(start).Round(time.Millisecond))

	// Resumed, it is dialed again without a request and reported heard.
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	testenv.WaitFor(t, 2*reprobeEvery+silentBound, "the resumed peer to be heard", func() bool {
		return sus.heardOf(peer.ID) == 1
	})
	t.Logf("resumed peer heard again %v after it resumed, without a request", time.Since(resumed).Round(time.Millisecond))
	if _, err := p.Lstat(context.Background(), peer, ""); err != nil {
		t.Errorf("the resumed peer: %v", err)
	}
}

// TestSlowBusyPeerStaysUp: a healthy peer over a long, narrow link
// (80 ms round trip, 1 Mbit/s, the link full with a large read) is never
// given up: the read completes, nothing is reported, and the connection
// idle afterwards is kept (its keepalives answered) with the default
// Timeout.
func TestSlowBusyPeerStaysUp(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSSHD(t, dir)
	proxy := wanproxy.New(s.Addr, wanproxy.Link{Delay: 40 * time.Millisecond, Rate: 1e6 / 8}).Serve(t)
	ctx := context.Background()
	peer := peerOf(t, s)
	peer.Source = peers.SourceLAN
	peer.Addrs = []string{proxy.Addr()}
	sus := &suspects{ids: map[string]time.Time{}}
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newPool(t, Options{Identities: []ssh.Signer{s.Client.Signer}, Suspects: sus, Logger: log})

	start := time.Now()
	r, err := p.OpenReader(ctx, peer, "big", -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read over the slow link: %d bytes, %v", len(got), err)
	}
	t.Logf("1 MiB read over 1 Mbit/s in %v", time.Since(start).Round(time.Millisecond))
	// Idle for several keepalive rounds.
	time.Sleep(2 * DefaultTimeout)
	if _, ok := sus.get(peer.ID); ok {
		t.Error("the slow peer was reported as gone")
	}
	g, _ := p.group(peer)
	g.mu.Lock()
	live := 0
	for _, c := range g.conns {
		if !c.dead.Load() {
			live++
		}
	}
	g.mu.Unlock()
	if live == 0 {
		t.Error("no connection to the slow peer left after idling")
	}
	if out := logs.String(); strings.Contains(out, "level=WARN") || strings.Contains(out, errSilent.Error()) || strings.Contains(out, "cannot reach") {
		t.Errorf("the slow peer's connection was given up:\n%s", out)
	}
}

// TestLongListingOutlivesHardTimeout: a listing that keeps arriving over
// a narrow link for longer than HardTimeout completes, as long as it
// delivers progressStep entries per HardTimeout; the same listing held
// to a rate it cannot reach fails with ETIMEDOUT at the hard deadline.
func TestLongListingOutlivesHardTimeout(t *testing.T) {
	const entries = 20000
	dir := t.TempDir()
	for i := range entries {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("IMG_%07d.jpg", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s := testenv.StartSSHD(t, dir)
	// About 2.5 MB of NAME replies at 1 MB/s: 2.5 s, over twice the
	// hard timeout.
	proxy := wanproxy.New(s.Addr, wanproxy.Link{Delay: 5 * time.Millisecond, Rate: 1e6}).Serve(t)
	ctx := context.Background()
	peer := peerOf(t, s)
	peer.Addrs = []string{proxy.Addr()}
	defer func(step int64) { progressStep = step }(progressStep)

	for _, c := range []struct {
		step    int64
		wantErr bool
	}{
		{step: 1000},
		{step: entries * 10, wantErr: true},
	} {
		progressStep = c.step
		p := newPool(t, Options{Identities: []ssh.Signer{s.Client.Signer}, Timeout: 5 * time.Second, HardTimeout: time.Second})
		if _, err := p.Lstat(ctx, peer, ""); err != nil { // connected before the clock starts
			t.Fatal(err)
		}
		start := time.Now()
		es, _, err := p.ReadDirLimit(ctx, peer, "", 0)
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case c.wantErr && !errors.Is(err, ErrTimeout):
			t.Errorf("with %d entries needed per hard timeout: %d entries in %v, %v; want ETIMEDOUT", c.step, len(es), took, err)
		case !c.wantErr && (err != nil || len(es) != entries):
			t.Errorf("with %d entries needed per hard timeout: %d entries in %v, %v; want all %d", c.step, len(es), took, err, entries)
		case !c.wantErr && took < 2*time.Second:
			t.Errorf("the listing took %v: the link is not narrow enough to test the hard timeout", took)
		}
		t.Logf("step %d: %d entries in %v, %v", c.step, len(es), took, err)
		p.Close()
	}
}
