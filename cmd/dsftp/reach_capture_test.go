//go:build linux

package main

// Checks of TestReachMatrix's lab that need its five homes running: the
// home whose router hands out a mapping nobody can use, and a packet
// capture on the relaying member.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// randomFile writes n random bytes to path and returns them.
func randomFile(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// brokenMappingFound: d's router, behind the carrier's NAT, reported the
// carrier's public address, so d advertised a mapping there; the members
// that dialed it back reached nothing (the carrier dropped their dials),
// and d then said it is unreachable and kept reverse connections.
func brokenMappingFound(t *testing.T, in *testenv.Internet, d *labHome) {
	t.Helper()
	const (
		failed = "members could not reach the share at its public address; the router's mapping does not work from outside, so members reach it through reverse connections"
		kept   = "keeping a reverse connection: this member can reach our share through it"
	)
	var fail testenv.Record
	testenv.WaitEvery(t, 60*time.Second, 200*time.Millisecond, "d's dial-back check fails", func() bool {
		// A reverse connection kept after the failed check.
		seen := false
		for _, r := range d.proc.Records("") {
			if r.Msg == failed {
				fail, seen = r, true
			} else if seen && r.Msg == kept {
				return true
			}
		}
		return false
	})
	onCarrier := func(addrs []string) bool {
		return slices.ContainsFunc(addrs, func(a string) bool { return strings.HasPrefix(a, testenv.CarrierPublic+":") })
	}
	if len(d.proc.Where(func(r testenv.Record) bool { return r.Msg == "advertised addresses" && onCarrier(r.Strs("addrs")) })) == 0 {
		t.Errorf("d did not advertise a mapping on the carrier's address %s:\n%s", testenv.CarrierPublic, d.proc.Output)
	}
	if !onCarrier(strings.Fields(fail.Str("addrs"))) {
		t.Errorf("d's failed dial-back check is not about the carrier's address: %v", fail.Attrs)
	}
	if d.proc.Count("members reached the share at its public address") != 0 {
		t.Errorf("members claim to have reached d's dead mapping:\n%s", d.proc.Output)
	}
	drops := in.CarrierDrops(t)
	if drops == 0 {
		t.Errorf("the carrier dropped no connection attempt, yet members dialed d's mapping back")
	}
	t.Logf("d: router reported %s, dial-back failed, reverse connections kept; the carrier dropped %d packets opening connections from outside",
		testenv.CarrierPublic, drops)
}

// plainSink takes plaintext TCP on the internet (testenv/cmd/plaintcp).
type plainSink struct {
	proc *testenv.Process
	addr string
}

func startSink(t *testing.T, in *testenv.Internet, plaintcp string) *plainSink {
	t.Helper()
	p := testenv.StartIn(t, in.NS, nil, plaintcp, "listen", in.Addr.String()+":0")
	p.WaitOutput(t, "listening on", 10*time.Second)
	return &plainSink{proc: p, addr: regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(p.Output.String())[1]}
}

// relayCarriesNoPlaintext captures every packet in the host namespaces of
// the members that can relay (a and e) while b reads marker from c (a
// relayed route), and finds no piece of marker in either capture. A
// second random file sent in plaintext from the relaying member during
// the same capture must be found: the search would catch plaintext.
func relayCarriesNoPlaintext(t *testing.T, homes map[string]*labHome, plaintcp string, sink *plainSink, marker []byte, route func() string) {
	t.Helper()
	const windows, window, controlSize = 64, 32, 256 << 10
	controlFile := filepath.Join(t.TempDir(), "control")
	control := randomFile(t, controlFile, controlSize)

	relays := []string{"a", "e"}
	caps := map[string]*testenv.Capture{}
	for _, n := range relays {
		caps[n] = testenv.StartCapture(t, homes[n].host.NS)
	}
	got, err := os.ReadFile(filepath.Join(homes["b"].mnt, "c", "marker"))
	if err != nil || !bytes.Equal(got, marker) {
		t.Fatalf("b read c/marker: %d bytes, equal %v, err %v", len(got), bytes.Equal(got, marker), err)
	}
	r := route()
	x, ok := strings.CutPrefix(r, "relay via ")
	if !ok || caps[x] == nil {
		t.Fatalf("b→c went %q; want a relay via a or e", r)
	}
	testenv.MustRunIn(t, homes[x].host.NS, plaintcp, "send", sink.addr, controlFile)
	sink.proc.WaitOutput(t, fmt.Sprintf("received %d bytes", controlSize), 10*time.Second)

	ws, cws := testenv.Windows(marker, windows, window), testenv.Windows(control, windows, window)
	for _, n := range relays {
		p := caps[n].Stop(t)
		found, cfound := p.Found(ws), p.Found(cws)
		t.Logf("capture on %s: %d packets, %d bytes; marker windows found %d of %d; plaintext control windows found %d of %d",
			n, p.Packets, p.Bytes, found, len(ws), cfound, len(cws))
		if found != 0 {
			t.Errorf("the capture on %s holds %d of %d %d-byte pieces of the marker: plaintext crossed its interfaces", n, found, len(ws), window)
		}
		if n != x {
			continue
		}
		// The relayed bytes cross X's interface twice (in from c's reverse
		// connection, out to b), each time at least the marker's size.
		if want := int64(2*len(marker) + controlSize); p.Bytes < want {
			t.Errorf("the capture on %s holds %d packet bytes; the relay and the control alone are at least %d: it missed the transfer", n, p.Bytes, want)
		}
		if cfound < len(cws)*3/4 {
			t.Errorf("the capture on %s holds only %d of %d pieces of the plaintext control: the search would not catch plaintext", n, cfound, len(cws))
		}
	}
}
