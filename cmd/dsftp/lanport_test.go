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
	onPort := func(r testenv.Record) bool { return r.Str("port") == strconv.Itoa(port) && r.Level != "INFO" }
	p.proc.WaitWhere(t, 10*time.Second, "a record about the taken port", onPort)
	p.stop(t)
	warns := p.proc.Where(onPort)
	t.Logf("records about the taken port: %v", warns)
	if len(warns) != 1 || warns[0].Level != "WARN" || !strings.Contains(warns[0].Msg, "--lan-port") || !strings.Contains(warns[0].Str("err"), "address already in use") {
		t.Errorf("share with UDP %d taken:\n%s\nwant one warning naming the port, the cause and --lan-port", port, p.proc.Output)
	}
}
