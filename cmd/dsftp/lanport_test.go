//go:build linux

package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// TestLANPortTaken: with the LAN port held by another program that does
// not share it (a plain bind, no SO_REUSEPORT), the share still starts,
// and says so once at the default level, with what to do.
func TestLANPortTaken(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	p := startLANShare(t, "alice", t.TempDir(), port)
	time.Sleep(time.Second) // the first announcements
	p.stop(t)
	out := p.proc.Output.String()
	var warns []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "UDP port "+strconv.Itoa(port)) && !strings.Contains(l, "announcing") {
			warns = append(warns, l)
		}
	}
	t.Logf("lines about the taken port: %q", warns)
	if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "--lan-port") || !strings.Contains(warns[0], "address already in use") {
		t.Errorf("share with UDP %d taken:\n%s\nwant one warning naming the port, the cause and --lan-port", port, out)
	}
}
