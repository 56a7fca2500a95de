//go:build linux

package discord

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers/advert"
)

// TestUDPWritesBudget: adverts carrying the QUIC path's candidates stay
// within about 10 REST writes per peer per hour. The public address is
// set again every STUN refresh (25 s, as punch.WatchPublic asks) with the
// same value, which posts nothing; it changes once an hour (a new address
// from the ISP), which re-posts once. The clock is scaled (15 min → 2 s).
func TestUDPWritesBudget(t *testing.T) {
	t.Parallel()
	const n = 5
	scale := float64(15*time.Minute) / float64(2*time.Second)
	refresh := 2 * time.Second
	hour := time.Duration(float64(time.Hour) / scale)
	stunEvery := time.Duration(float64(25*time.Second) / scale)
	e := newEnv(t)
	var ids []string
	var nodes []*node
	for i := range n {
		tok, id := e.bot(t)
		ids = append(ids, id)
		nodes = append(nodes, e.start(t, tok, fmt.Sprintf("udp%d", i), func(c *Config) {
			c.Refresh, c.TTL = refresh, 4*refresh
			c.MinRepost = time.Duration(float64(DefaultMinRepost) / scale)
		}))
	}
	cands := func(port int) []string {
		return []string{fmt.Sprintf("198.51.100.7:%d", port), "192.168.1.5:2200", "[2001:db8::5]:2200"}
	}
	for _, nd := range nodes {
		nd.d.SetUDP(cands(2200), "cone")
	}
	waitFor(t, 20*time.Second, "every peer sees the others' UDP candidates", func() bool {
		for _, nd := range nodes {
			for _, p := range nd.reg.List() {
				if len(p.UDP) != 3 || p.NAT != "cone" {
					return false
				}
			}
		}
		return true
	})
	before := e.fake.Writes()
	start := time.Now()
	changed := false
	for time.Since(start) < hour {
		port := 2200
		if time.Since(start) > hour/2 {
			port, changed = 40000, true
		}
		for _, nd := range nodes {
			nd.d.SetUDP(cands(port), "cone")
		}
		time.Sleep(stunEvery)
	}
	after := e.fake.Writes()
	if !changed {
		t.Fatal("the public address never changed in the window")
	}
	worst, total := 0, 0
	for _, id := range ids {
		w := after[id] - before[id]
		worst, total = max(worst, w), total+w
	}
	t.Logf("REST writes per peer in one scaled hour with UDP candidates, one address change, STUN refresh every 25 s: mean %.1f, worst %d",
		float64(total)/n, worst)
	// As in TestRateBudget100: the refresh is jittered by ±20%, so one
	// peer's hour may hold a fifth refresh.
	if mean := float64(total) / n; mean > 10 || worst > 12 {
		t.Errorf("mean %.1f, worst %d REST writes per peer in an hour; want about 10", mean, worst)
	}
	waitFor(t, 10*time.Second, "the changed address reaches the others", func() bool {
		for _, p := range nodes[0].reg.List() {
			if len(p.UDP) == 0 || p.UDP[0] != "198.51.100.7:40000" {
				return false
			}
		}
		return true
	})
}

// The largest advert keeps the public UDP candidate and the relayed one:
// when everything does not fit, the local candidates go first, then the
// last addresses.
func TestUDPAdvertFits(t *testing.T) {
	t.Parallel()
	host := newSigner(t)
	a := advert.Advert{
		Name: strings.Repeat("n", 64), Guild: "100", Channel: "200", Instance: advert.NewInstance(), Seq: 1,
		Issued: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix(), Unreachable: true, NAT: "cone",
		Relay: "[2001:db8:1234:5678:9abc:def0:1234:567a]:65535",
	}
	for range advert.MaxAddrs {
		a.Addrs = append(a.Addrs, "[2001:db8:1234:5678:9abc:def0:1234:5678]:65535")
	}
	for range 4 {
		a.Via = append(a.Via, ssh.FingerprintSHA256(newSigner(t).PublicKey()))
	}
	for range 2 {
		a.ClientKeys = append(a.ClientKeys, advert.MarshalKey(newSigner(t).PublicKey()))
	}
	a.UDP = []string{"198.51.100.7:2200"}
	for i := range advert.MaxUDP + 2 {
		a.UDP = append(a.UDP, fmt.Sprintf("[2001:db8:1234:5678:9abc:def0:1234:%x]:65535", i))
	}
	text, err := encodeFitting(a, host)
	if err != nil {
		t.Fatal(err)
	}
	d, err := advert.Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.UDP) == 0 || d.UDP[0] != "198.51.100.7:2200" {
		t.Fatalf("UDP candidates %q; want the public one kept first", d.UDP)
	}
	// The last (local) ones go first: what is kept is the head of the list.
	if !slices.Equal(d.UDP, a.UDP[:len(d.UDP)]) {
		t.Fatalf("UDP candidates %q; want the first %d of %q", d.UDP, len(d.UDP), a.UDP)
	}
	if d.Relay != a.Relay {
		t.Fatalf("relayed candidate %q; want %q kept", d.Relay, a.Relay)
	}
	t.Logf("largest advert: %d characters, %d of %d addresses, %d of %d UDP candidates", len(text), len(d.Addrs), len(a.Addrs), len(d.UDP), len(a.UDP))
}
