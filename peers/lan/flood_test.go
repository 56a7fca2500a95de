//go:build linux

package lan_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFlood: 10,000 validly signed adverts from fresh keys, from 40
// loopback addresses. The rate limit drops most before their signature is
// checked; of the rest, the receiver keeps at most 32 peers per address
// and MaxPeers in total (300 here, so that the flood reaches it), drops
// the others and says so once per address and once for the total; alice,
// known before the flood, stays.
func TestFlood(t *testing.T) {
	const sources, perSource, maxPeers = 40, 250, 300
	port := testenv.FreeUDPPort(t)
	var logs lockedBuffer
	rx := startNode(t, "rx", port, func(o *lan.Options) {
		o.MaxPeers = maxPeers
		o.ListenOnly = true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	// alice is heard before the flood. (No second node on the port: a
	// unicast datagram reaches only one of the sockets sharing it.)
	alice := newTestCodec(t, "alice", "127.0.0.1:2222")
	aliceMsg := func() []byte {
		m, err := alice.Encode(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	sendUntil(t, "127.0.0.1", port, aliceMsg(), func() bool { _, ok := rx.reg.Get("alice"); return ok })

	// Sign everything first (one goroutine per source): the flood itself
	// is then as fast as the receiver takes it.
	msgs := make([][][]byte, sources)
	var wg sync.WaitGroup
	client := testenv.NewSigner(t) // fresh host keys; one client key will do
	for s := range sources {
		wg.Go(func() {
			for i := range perSource {
				c := &testCodec{name: fmt.Sprintf("flood-%d-%d", s, i), host: testenv.NewSigner(t), client: client,
					instance: fmt.Sprintf("i%d-%d", s, i), addrs: []string{"127.0.0.1:9"}}
				m, err := c.Encode(time.Minute)
				if err != nil {
					panic(err)
				}
				msgs[s] = append(msgs[s], m)
			}
		})
	}
	wg.Wait()
	t.Logf("signed %d adverts", sources*perSource)
	start := time.Now()
	sent := uint64(0)
	for s := range sources {
		from := fmt.Sprintf("127.0.0.%d", 10+s)
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)})
		if err != nil {
			t.Fatal(err)
		}
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		for i, m := range msgs[s] {
			if _, err := c.WriteToUDP(m, to); err != nil {
				t.Fatal(err)
			}
			sent++
			// Keep within the socket buffer: wait for the receiver
			// every 50 datagrams.
			if i%50 == 49 {
				deadline := time.Now().Add(30 * time.Second)
				for st := rx.d.Stats(); st.Accepted+st.Capped+st.RateLimited+st.Stale+st.Duplicate < sent; st = rx.d.Stats() {
					if time.Now().After(deadline) {
						t.Fatalf("the receiver did not catch up: %+v after %d sent", st, sent)
					}
					time.Sleep(time.Millisecond)
				}
			}
		}
		c.Close()
	}
	testenv.WaitFor(t, 30*time.Second, "the receiver to handle the flood", func() bool {
		st := rx.d.Stats()
		return st.Capped+st.Accepted+st.RateLimited >= sent
	})
	st := rx.d.Stats()
	list := rx.reg.List()
	t.Logf("flood of %d adverts handled in %v: %d peers listed, %d dropped by the caps, %d by the rate limit",
		sent, time.Since(start).Round(time.Millisecond), len(list), st.Capped, st.RateLimited)
	if len(list) > maxPeers {
		t.Errorf("%d LAN peers listed, cap %d", len(list), maxPeers)
	}
	bySource := map[string]int{}
	for _, e := range list {
		if strings.HasPrefix(e.Name, "flood-") {
			var s, i int
			fmt.Sscanf(e.Name, "flood-%d-%d", &s, &i)
			bySource[fmt.Sprint(s)]++
		}
	}
	for s, n := range bySource {
		if n > lan.DefaultMaxPeersPerSource {
			t.Errorf("source %s has %d peers listed, cap %d", s, n, lan.DefaultMaxPeersPerSource)
		}
	}
	if st.Capped == 0 || st.Accepted+st.Capped+st.RateLimited < sent {
		t.Errorf("of %d adverts sent: %d accepted, %d capped, %d rate-limited", sent, st.Accepted, st.Capped, st.RateLimited)
	}
	// alice's refreshes still count after the flood.
	before := rx.d.Stats().Accepted
	sendUntil(t, "127.0.0.1", port, aliceMsg(), func() bool { return rx.d.Stats().Accepted > before })
	if _, ok := rx.reg.Get("alice"); !ok {
		t.Errorf("alice, known before the flood, is gone")
	}
	out := logs.String()
	if n := strings.Count(out, "announces too many peers"); n == 0 || n > sources {
		t.Errorf("%d per-address warnings for %d flooding addresses; want one each at most", n, sources)
	}
	if n := strings.Count(out, "too many peers on the LAN"); n != 1 {
		t.Errorf("%d total-cap warnings, want 1", n)
	}
}
