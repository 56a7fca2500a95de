//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestLANFloodBinary: 4,000 validly signed adverts from fresh keys, sent
// from 40 loopback addresses, at a real mount. The LAN caps hold (at most
// lan.DefaultMaxPeersPerSource per address, lan.DefaultMaxPeers in all),
// the real peer stays listed and readable, and the root still answers.
// Before the caps, 10,000 such adverts grew a root to 9,761 directories
// and one ls took 7.1 s.
func TestLANFloodBinary(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	alice := startLANMount(t, nil, "alice", loopbackArgs(port)...)
	bob := startLANMount(t, nil, "bob", loopbackArgs(port)...)
	alice.waitList(t, "bob")

	const sources, perSource = 40, 100
	bcast := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: port}
	var wg sync.WaitGroup
	for s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(10+s))})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := range perSource {
				codec := lan.NewAdvertCodec(testenv.NewSigner(nil), fmt.Sprintf("flood-%d-%d", s, i), "dsftp", nil)
				codec.SetAddrs([]string{"127.0.0.1:1"})
				msg, err := codec.Encode(time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.WriteToUDP(msg, bcast); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // a flood, not a burst the socket buffer drops
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Second) // let the mount take in what reached it

	start := time.Now()
	names := alice.list(t)
	took := time.Since(start)
	flood := 0
	for _, n := range names {
		if strings.HasPrefix(n, "flood-") {
			flood++
		}
	}
	t.Logf("after %d adverts from %d addresses: the root lists %d flood peers (ls took %v)", sources*perSource, sources, flood, took.Round(time.Millisecond))
	if flood > lan.DefaultMaxPeers || flood > sources*lan.DefaultMaxPeersPerSource {
		t.Errorf("%d flood peers listed; caps are %d per address and %d in all", flood, lan.DefaultMaxPeersPerSource, lan.DefaultMaxPeers)
	}
	if !slices.Contains(names, "bob") {
		t.Fatalf("bob is gone from alice's root after the flood")
	}
	if b, err := os.ReadFile(alice.path("bob", "whoami.txt")); err != nil || string(b) != "I am bob\n" {
		t.Errorf("alice reads bob/whoami.txt after the flood: %q, %v", b, err)
	}
	if alice.proc.Count("a LAN address announces too many peers; ignoring its new ones until some expire (logged once per address)") > sources {
		t.Errorf("the per-address cap warning is logged more than once per address")
	}
	alice.stop(t)
	bob.stop(t)
}
