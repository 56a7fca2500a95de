//go:build linux

package discord

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestRateBudget100 runs 100 peers, each with its own bot, in one channel
// with the refresh interval scaled down (15 min → 2 s), and counts REST
// writes per peer. Scaled back to real time, a peer must stay within
// about 10 writes an hour. It also measures how long a peer's advert takes
// to reach the 99 others.
func TestRateBudget100(t *testing.T) {
	if testing.Short() {
		t.Skip("100-peer simulation skipped in -short mode")
	}
	const (
		n    = 100
		real = 15 * time.Minute
	)
	// The clock is scaled so that 100 peers in one process keep up: each
	// advert is verified by all 99 others, on this machine's few cores.
	// Under the race detector signature checks are many times slower, so
	// the clock runs slower too (and leaves CPU for other packages' tests).
	refresh, stagger, periods := 2*time.Second, 20*time.Millisecond, 3
	if raceEnabled {
		refresh, stagger, periods = 16*time.Second, 100*time.Millisecond, 2
	}
	measure := time.Duration(periods) * refresh
	scale := float64(real) / float64(refresh)
	e := newEnv(t)
	nodes := make([]*node, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firstSeen := make([]map[string]time.Time, n) // observer -> peer fp -> when
	for i := range n {
		tok, id := e.bot(t)
		ids[i] = id
		cfg, host, client := e.config(t, tok, fmt.Sprintf("peer%03d", i))
		cfg.Refresh, cfg.TTL, cfg.PostDelay = refresh, 4*refresh, time.Second
		cfg.RequestTimeout = 30 * time.Second // the fake serves 100 peers on a shared CPU
		firstSeen[i] = map[string]time.Time{}
		ch, stop := cfg.Registry.Watch()
		t.Cleanup(stop)
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		go func(i int) {
			for {
				select {
				case <-done:
					return
				case <-ch:
				}
				now := time.Now()
				list := cfg.Registry.List()
				mu.Lock()
				for _, p := range list {
					if _, ok := firstSeen[i][p.ID]; !ok {
						firstSeen[i][p.ID] = now
					}
				}
				mu.Unlock()
			}
		}(i)
		nd := &node{reg: cfg.Registry, host: host, client: client, fp: ssh.FingerprintSHA256(host.PublicKey())}
		nodes[i] = nd
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * stagger) // people start over 2 s
			nd.started = time.Now()
			d, err := Start(context.Background(), cfg)
			if err != nil {
				t.Errorf("start peer %d: %v", i, err)
				return
			}
			nd.posted = time.Now()
			nd.d = d
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				nd.d.Close(ctx)
			}()
		}
		wg.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for len(nd.reg.List()) != n-1 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if time.Now().After(deadline) {
		var counts []int
		for _, nd := range nodes {
			counts = append(counts, len(nd.reg.List()))
		}
		t.Fatalf("not every peer lists the other %d after 60 s: %v (gateways: %d)", n-1, counts, e.fake.GatewayConns())
	}

	// Latency: from a peer's start (and from its post) to each other
	// peer's registry.
	var fromStart, fromPost []time.Duration
	mu.Lock()
	for i := range n {
		for j, nd := range nodes {
			if i == j {
				continue
			}
			seen, ok := firstSeen[i][nd.fp]
			if !ok {
				t.Fatalf("peer %d never recorded peer %d", i, j)
			}
			fromStart = append(fromStart, seen.Sub(nd.started))
			if seen.After(nd.posted) { // peers that started later find earlier ones in history
				fromPost = append(fromPost, seen.Sub(nd.posted))
			}
		}
	}
	mu.Unlock()
	slices.Sort(fromStart)
	slices.Sort(fromPost)
	q := func(d []time.Duration, p float64) time.Duration {
		return d[int(p*float64(len(d)-1))].Round(time.Millisecond)
	}
	t.Logf("start → listed on the others: median %v, p99 %v, max %v (includes the random post delay of up to 1 s)", q(fromStart, .5), q(fromStart, .99), q(fromStart, 1))
	if len(fromPost) > 0 {
		t.Logf("advert posted → listed on the others: median %v, p99 %v, max %v", q(fromPost, .5), q(fromPost, .99), q(fromPost, 1))
	}

	// Budget: writes during a few scaled refresh periods in steady state.
	before := e.fake.Writes()
	time.Sleep(measure)
	after := e.fake.Writes()
	total, worst := 0, 0
	for _, id := range ids {
		w := after[id] - before[id]
		total += w
		worst = max(worst, w)
	}
	hours := measure.Hours() * scale
	perPeer := float64(total) / n / hours
	worstRate := float64(worst) / hours
	t.Logf("REST writes per peer per hour (refresh scaled %.0fx): mean %.1f, worst peer %.1f", scale, perPeer, worstRate)
	if perPeer > 10 || worstRate > 12 {
		t.Errorf("over budget: mean %.1f, worst %.1f writes per peer per hour; want about 10", perPeer, worstRate)
	}
	// Honesty check: the peers did refresh (post + delete) in the window,
	// so the budget above counted real work.
	refreshed := 0
	for _, id := range ids {
		if after[id]-before[id] >= 2 {
			refreshed++
		}
	}
	if refreshed < n*9/10 {
		t.Errorf("only %d of %d peers refreshed their advert in %v (%d refresh periods)", refreshed, n, measure, periods)
	}
	// At rest, one advert per peer.
	waitFor(t, 30*time.Second, "one advert per peer", func() bool { return len(e.fake.Messages(e.channel)) <= n+n/10 })
	for _, nd := range nodes {
		if len(nd.reg.List()) != n-1 {
			t.Errorf("a peer lists %d others after refreshes, want %d", len(nd.reg.List()), n-1)
			break
		}
	}
}
