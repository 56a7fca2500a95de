//go:build linux

package main

// Attacks on a member's relays from outside, against the real binary: a
// hand-made member (member_test.go) offers its own share over a reverse
// connection and asks for relays to itself, so it holds both ends of
// every relay the share carries.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// vmStatus reads a field such as VmHWM of pid, in bytes.
func vmStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// pump writes into ch until it fails, adding what went to n.
func pump(ch ssh.Channel, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := ch.Write(buf)
		n.Add(int64(k))
		if err != nil {
			return
		}
	}
}

// TestRelayMemory: mallory asks alice for 1,000 relays to itself over 4
// connections, fills both sides of each and never reads either: alice
// takes MaxRelaysPerKey of them, refuses the rest, and her memory grows by
// at most twice what route.RelayMemory states for those (Go's heap growth before
// a collection).
func TestRelayMemory(t *testing.T) {
	t.Parallel()
	f := newFakeDiscord(t)
	p, port := startDiscordShare(t, f, f.bot(), "alice", t.TempDir(), "--relay-rate", "0")
	alice, _ := f.advertOf("alice")
	m := newFakeMember(t, f, "mallory")
	m.advertise(t, nil, true)
	rc := m.login(t, port, alice.HostKey)
	m.offerReverse(t, rc)
	var written atomic.Int64
	rc.servePipes(func(ch ssh.Channel) { pump(ch, &written) })
	var conns []*memberConn
	for range 4 {
		conns = append(conns, m.login(t, port, alice.HostKey))
	}
	pid := p.Cmd.Process.Pid
	base := vmStatus(t, pid, "VmRSS")

	const asked = 1000
	accepted, refused := 0, 0
	start := time.Now()
	for i := range asked {
		ch, err := conns[i%len(conns)].openRelay(m.fingerprint())
		if err != nil {
			refused++
			continue
		}
		accepted++
		go pump(ch, &written)
	}
	// The windows are full once nothing more goes in for 2 s.
	last, still := written.Load(), time.Now()
	// Past 60 s the peak is read as it is.
	_ = testenv.Poll(60*time.Second-time.Since(start), 200*time.Millisecond, func() bool {
		if w := written.Load(); w != last {
			last, still = w, time.Now()
		}
		return time.Since(still) >= 2*time.Second
	})
	peak := vmStatus(t, pid, "VmHWM")
	// Go's heap grows to twice the live data before a collection; the
	// race detector multiplies memory use further.
	factor := int64(2)
	if testenv.RaceEnabled() {
		factor = 6
	}
	bound := base + factor*int64(accepted)*route.RelayMemory
	t.Logf("%d relays asked: %d taken, %d refused; %d MiB written into them; alice's RSS %d MiB before, peak %d MiB (bound %d MiB)",
		asked, accepted, refused, last>>20, base>>20, peak>>20, bound>>20)
	if accepted > route.MaxRelaysPerKey || refused < asked-route.MaxRelaysPerKey {
		t.Errorf("alice took %d relays for one member, want at most %d", accepted, route.MaxRelaysPerKey)
	}
	if accepted == 0 || last < int64(accepted)<<20 {
		t.Fatalf("%d relays taken, %d bytes written into them: the test filled nothing", accepted, last)
	}
	if peak > bound {
		t.Fatalf("alice's peak RSS %d MiB, want at most %d MiB", peak>>20, bound>>20)
	}
}

// TestRelayBandwidth: alice relays at --relay-rate 2 MiB/s. Mallory asks
// for 100 relays to itself and pumps both ways through each; dave, with 2
// relays, does the same. Together they get at most 1.2 times the rate
// through alice, and each member gets half of it (±15 points), however
// many relays it holds.
func TestRelayBandwidth(t *testing.T) {
	t.Parallel()
	const rate = 2 << 20
	f := newFakeDiscord(t)
	_, port := startDiscordShare(t, f, f.bot(), "alice", t.TempDir(), "--relay-rate", strconv.Itoa(rate))
	alice, _ := f.advertOf("alice")

	// relays gives member name n relays to itself, both ways pumped and
	// drained, counting what arrives at its ends in got.
	relays := func(name string, n, nconns int, got *atomic.Int64) int {
		m := newFakeMember(t, f, name)
		m.advertise(t, nil, true)
		rc := m.login(t, port, alice.HostKey)
		m.offerReverse(t, rc)
		var sent atomic.Int64
		both := func(ch ssh.Channel) {
			go pump(ch, &sent)
			_, _ = io.Copy(io.Discard, countReader{ch, got})
		}
		rc.servePipes(both)
		var conns []*memberConn
		for range nconns {
			conns = append(conns, m.login(t, port, alice.HostKey))
		}
		taken := 0
		for i := range n {
			ch, err := conns[i%nconns].openRelay(m.fingerprint())
			if err == nil {
				taken++
				go both(ch)
			}
		}
		return taken
	}
	var mallory, dave atomic.Int64
	nm := relays("mallory", 100, 4, &mallory)
	nd := relays("dave", 2, 1, &dave)

	time.Sleep(2 * time.Second)
	m0, d0, t0 := mallory.Load(), dave.Load(), time.Now()
	time.Sleep(8 * time.Second)
	dm, dd, dt := mallory.Load()-m0, dave.Load()-d0, time.Since(t0).Seconds()
	total := float64(dm+dd) / dt
	share := float64(dm) / float64(dm+dd)
	t.Logf("relay rate %d MiB/s; mallory %d relays, dave %d: %.2f MiB/s through alice in all, mallory %.2f MiB/s (%.0f%%), dave %.2f MiB/s",
		rate>>20, nm, nd, total/(1<<20), float64(dm)/dt/(1<<20), 100*share, float64(dd)/dt/(1<<20))
	if total > 1.2*rate {
		t.Errorf("%.2f MiB/s through alice, want at most 1.2 × %d MiB/s", total/(1<<20), rate>>20)
	}
	if total < 0.5*rate {
		t.Errorf("%.2f MiB/s through alice, want at least half of %d MiB/s: the relays barely moved", total/(1<<20), rate>>20)
	}
	if share < 0.35 || share > 0.65 {
		t.Errorf("mallory got %.0f%% of the relayed bytes with %d relays against dave's %d; want 50%% ± 15", 100*share, nm, nd)
	}
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
