//go:build linux

package punch

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// freeUDPPort is a UDP port on 127.0.0.1 that was free a moment ago,
// with the next one free too (coturn takes both), below the kernel's
// ephemeral range so that no socket of another test takes it meanwhile.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := 20000 + rand.IntN(12000)
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		a.Close()
		if err == nil {
			b.Close()
			return port
		}
	}
	t.Fatal("no two free UDP ports in a row on 127.0.0.1")
	return 0
}

// A relay on a real coturn (on loopback) carries a QUIC path both ways:
// the relay's holder punches the peer's address through it, the peer
// punches the relayed address. When the server forgets the allocation
// (here: it stops), Lost tells within two refreshes.
func TestRelay(t *testing.T) {
	port := freeUDPPort(t)
	tr := testenv.StartLoopbackTURN(t, port, 20*time.Second)
	var log testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	servers, err := ParseTURN([]string{fmt.Sprintf("turn://%s:%s@%s", tr.User, tr.Pass, tr.Servers[0])})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 60*time.Second)
	r, err := ListenRelay(ctx, servers, Config{ID: "A", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Addr().Addr() != netip.MustParseAddr("127.0.0.1") || r.Addr().Port() < 49152 {
		t.Fatalf("relayed address %v; want one of coturn's relay ports", r.Addr())
	}
	b := newEndpoint(t, "B", Config{})

	type res struct {
		p   *Path
		err error
	}
	got := make(chan res, 1)
	go func() {
		p, err := r.Punch(ctx, "B", []netip.AddrPort{b.Addr()})
		got <- res{p, err}
	}()
	pb, err := b.Punch(ctx, "A", []netip.AddrPort{r.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	ra := <-got
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	if pb.RemoteAddr() != r.Addr() {
		t.Errorf("B's path goes to %v; want the relayed address %v", pb.RemoteAddr(), r.Addr())
	}
	// Both ways, 1 MiB each: packets of 1280 bytes plus TURN's framing.
	payload := bytes.Repeat([]byte("dsftp over TURN "), 1<<16)
	for _, c := range []struct {
		name     string
		open     *Path
		acceptor *Endpoint
	}{{"B→A", pb, r.Endpoint}, {"A→B", ra.p, b}} {
		s, err := c.open.OpenStream(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		go func() {
			s.Write(payload)
			s.Close()
		}()
		in, err := c.acceptor.Accept(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		data, err := io.ReadAll(in)
		in.Close()
		if err != nil || !bytes.Equal(data, payload) {
			t.Fatalf("%s: read %d bytes, %v; want the %d written", c.name, len(data), err, len(payload))
		}
	}

	if err := tr.Proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Lost():
	case <-time.After(45 * time.Second):
		t.Fatalf("Lost not closed 45 s after coturn stopped (allocation lifetime 20 s)\n%s", log.String())
	}
	if strings.Contains(log.String(), tr.Pass) {
		t.Error("the log shows the TURN password")
	}
}

// A server that refuses the credentials, and one that does not answer,
// are errors that say so without the password.
func TestRelayErrors(t *testing.T) {
	port := freeUDPPort(t)
	tr := testenv.StartLoopbackTURN(t, port, time.Minute)
	silent := freeUDPPort(t)
	for _, c := range []struct{ url, want string }{
		{fmt.Sprintf("turn://%s:WRONGPW@%s", tr.User, tr.Servers[0]), "refused the user name or password (TURN error 401)"},
		{fmt.Sprintf("turn://%s:WRONGPW@127.0.0.1:%d", tr.User, silent), "did not answer"},
	} {
		servers, err := ParseTURN([]string{c.url})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ListenRelay(testCtx(t, 30*time.Second), servers, Config{ID: "A"})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "WRONGPW") {
			t.Errorf("%s: %v; want an error saying %q without the password", servers[0], err, c.want)
		}
	}
}
