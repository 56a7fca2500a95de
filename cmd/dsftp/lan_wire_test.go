//go:build linux

package main

import (
	"github.com/dsftp/dsftp/cmd/internal/instance"

	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// lanShare is one `dsftp share --discovery lan` on loopback.
type lanShare struct {
	name, fp string
	port     int
	proc     *testenv.Node
}

// startLANShare shares dir as name on loopback, LAN port lanPort.
func startLANShare(t *testing.T, name, dir string, lanPort int) *lanShare {
	t.Helper()
	args := append([]string{"share", dir, "--name", name, "--discovery", "lan"}, loopbackArgs(lanPort)...)
	p := testenv.StartNode(t, testenv.NodeOptions{Env: []string{"DSFTP_DISCORD_TOKEN="}}, args...)
	port, fp := p.ShareReady(t)
	return &lanShare{name: name, fp: fp, port: port, proc: p}
}

// found lists the names a dsftp found as peers on the LAN.
func found(n *testenv.Node) []string { return lanNames(n, "found peer on the LAN") }

// heardClients lists the names a dsftp heard client-only LAN adverts of.
func heardClients(n *testenv.Node) []string {
	return lanNames(n, "heard a client on the LAN (it shares nothing; its key may log in)")
}

// lanNames are the name attributes of a node's records msg.
func lanNames(n *testenv.Node, msg string) []string {
	var names []string
	for _, r := range n.Records(msg) {
		names = append(names, r.Str("name"))
	}
	return names
}

func (s *lanShare) stop(t *testing.T) {
	t.Helper()
	s.proc.Stop(t, syscall.SIGINT, 20*time.Second)
}

// The shell with --discovery lan announces its share, lists a LAN peer
// and downloads from it; the peer lets the shell in because it heard the
// shell's advert.
func TestShellOnLAN(t *testing.T) { testShellOnLAN(t, false) }

// With --no-share (refused with LAN discovery before client-only adverts
// existed) the shell announces a client-only advert: alice hears it as a
// client, not a peer, and lets the shell in all the same.
func TestShellNoShareOnLAN(t *testing.T) { testShellOnLAN(t, true) }

func testShellOnLAN(t *testing.T, noShare bool) {
	bin := testenv.Binary(t)
	port := testenv.FreeUDPPort(t)
	dirA := t.TempDir()
	writeFile(t, dirA, "hello world.txt", "hello from alice\n")
	alice := startLANShare(t, "alice", dirA, port)

	dl := t.TempDir()
	argv := append([]string{"env", "DSFTP_DISCORD_TOKEN=", bin, "shell", "--name", "me", "--discovery", "lan"}, loopbackArgs(port)...)
	if noShare {
		argv = append(argv, "--no-share")
	}
	x := testenv.StartTmux(t, dl, 140, 40, argv...)
	x.WaitScreen(`(?m)^dsftp>`, 60*time.Second)
	if !strings.Contains(x.Screen(), "Finding peers on the local network") {
		t.Fatalf("no LAN note in the banner:\n%s", x.Screen())
	}
	s := &shellSession{t: t, x: x}
	aliceRow := regexp.MustCompile(`(?m)^  alice +127\.0\.0\.1:` + strconv.Itoa(alice.port) + ` +lan +` + regexp.QuoteMeta(alice.fp) + `$`)
	s.waitPeer(aliceRow)
	// The shell announced itself: alice heard it (and so accepts its key),
	// as a peer, or with --no-share as a client only.
	testenv.WaitFor(t, 30*time.Second, "alice to hear the shell", func() bool {
		if noShare {
			return slices.Contains(heardClients(alice.proc), "me")
		}
		return slices.Contains(found(alice.proc), "me")
	})
	if noShare && slices.Contains(found(alice.proc), "me") {
		t.Errorf("alice took the --no-share shell for a peer:\n%s", alice.proc.Output.String())
	}
	s.expect("connect alice", `connected to alice`)
	s.expect("ls", `(?m)^hello world\.txt$`)
	s.expect(`get "hello world.txt"`, `hello world\.txt: done, 17 B`)
	if b, _ := os.ReadFile(filepath.Join(dl, "hello world.txt")); string(b) != "hello from alice\n" {
		t.Fatalf("downloaded %q", b)
	}
	x.Keys("C-d")
	testenv.WaitFor(t, 15*time.Second, "the shell to exit", x.Dead)
	alice.stop(t)
}

// lanSniffer records every datagram sent to the LAN port on loopback.
type lanSniffer struct {
	mu   sync.Mutex
	msgs [][]byte
	last time.Time // of the last datagram
}

func sniffLAN(t *testing.T, port int) *lanSniffer {
	c := broadcastConn(t, port) // closed at cleanup, which ends the reader
	s := &lanSniffer{}
	go func() {
		buf := make([]byte, 8192)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, bytes.Clone(buf[:n]))
			s.last = time.Now()
			s.mu.Unlock()
		}
	}()
	return s
}

// senders returns the names in the adverts heard, how many queries, and
// how many datagrams were neither.
// quietFor is how long the port has carried nothing.
func (s *lanSniffer) quietFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.last)
}

// left lists the names that sent a leaving advert (one that lives at
// most lan.LeaveTTL).
func (s *lanSniffer) left() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, m := range s.msgs {
		d, err := advert.Decode(string(m))
		if err == nil && d.Expires-d.Issued <= int64(lan.LeaveTTL/time.Second) && !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names
}

func (s *lanSniffer) senders() (names []string, queries, invalid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if lan.IsQuery(m) {
			queries++
			continue
		}
		d, err := advert.Decode(string(m))
		if err != nil {
			invalid++
			continue
		}
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names, queries, invalid
}

// startPeersListener starts `dsftp peers --discovery lan` on loopback and
// returns once it listens.
func startPeersListener(t *testing.T, port int, extra ...string) *testenv.Node {
	t.Helper()
	args := append([]string{"peers", "--discovery", "lan", "--lan-interface", "lo", "--lan-port", strconv.Itoa(port)}, extra...)
	n := testenv.StartNode(t, testenv.NodeOptions{Env: []string{"DSFTP_DISCORD_TOKEN="}}, args...)
	n.WaitRecord(t, 30*time.Second, "listening for LAN adverts", "port", strconv.Itoa(port))
	return n
}

// `dsftp peers --discovery lan` lists the LAN sharers, as JSON and as a
// table, and sends nothing but its query: no datagram but the sharers'
// adverts and the queries crosses the port, and the sharers never hear of
// the listeners.
func TestPeersOnLAN(t *testing.T) {
	t.Parallel()
	port := testenv.FreeUDPPort(t)
	sniff := sniffLAN(t, port)
	// The listeners start first: sharers announce at once on start, and
	// then only every 30 s.
	jsonL := startPeersListener(t, port, "--wait", "20s", "--json")
	tableL := startPeersListener(t, port, "--wait", "20s")
	dirA, dirB := t.TempDir(), t.TempDir()
	alice := startLANShare(t, "alice", dirA, port)
	bob := startLANShare(t, "bob", dirB, port)

	for _, l := range []*testenv.Node{jsonL, tableL} {
		err, ok := l.Wait(60 * time.Second)
		if !ok {
			t.Fatal("dsftp peers --wait 20s still running after 60 s")
		}
		if err != nil {
			t.Fatalf("dsftp peers: %v\n%s", err, l.Output)
		}
	}
	var rows []instance.Listed
	if err := json.Unmarshal([]byte(jsonL.Stdout()), &rows); err != nil {
		t.Fatalf("parse %s: %v", jsonL.Stdout(), err)
	}
	if len(rows) != 2 {
		t.Fatalf("dsftp peers --json listed %d peers, want alice and bob:\n%s", len(rows), jsonL.Stdout())
	}
	for i, sh := range []*lanShare{alice, bob} {
		r := rows[i]
		want := "127.0.0.1:" + strconv.Itoa(sh.port)
		if r.Name != sh.name || r.Fingerprint != sh.fp || r.Source != "lan" || !slices.Contains(r.Addrs, want) || r.Expires.IsZero() {
			t.Errorf("row %d = %+v, want %s %s at %s from lan", i, r, sh.name, sh.fp, want)
		}
	}
	table := tableL.Stdout()
	for _, sh := range []*lanShare{alice, bob} {
		row := `(?m)^` + sh.name + ` +` + regexp.QuoteMeta(sh.fp) + ` +127\.0\.0\.1:` + strconv.Itoa(sh.port) + ` +direct +\d+s +lan$`
		if !regexp.MustCompile(row).MatchString(table) || !strings.HasPrefix(table, "NAME") {
			t.Errorf("table lacks a row for %s:\n%s", sh.name, table)
		}
	}

	alice.stop(t)
	bob.stop(t)
	// The sharers heard only each other; the wire carried only their
	// adverts and the queries (a listener that sent anything else would
	// show up here).
	if got := found(alice.proc); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("alice found %v on the LAN, want only bob", got)
	}
	if got := found(bob.proc); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("bob found %v on the LAN, want only alice", got)
	}
	testenv.WaitFor(t, 10*time.Second, "the sharers' leaving adverts on the wire", func() bool {
		return slices.Equal(sniff.left(), []string{"alice", "bob"})
	})
	names, queries, invalid := sniff.senders()
	if !slices.Equal(names, []string{"alice", "bob"}) || invalid != 0 || queries == 0 {
		t.Errorf("the LAN port carried adverts of %v, %d queries and %d other datagrams; want only alice's and bob's and the queries", names, queries, invalid)
	}
}

// --discovery off has nothing to list; --wait must be positive. (A shell
// with --no-share and LAN discovery is no usage error: it announces a
// client-only advert, TestShellNoShareOnLAN.)
func TestPeersAndShellUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"peers", "--discovery", "off"}, "nothing to list"},
		{[]string{"peers", "--discovery", "lan", "--wait", "0s"}, "--wait 0s"},
		{[]string{"peers", "--discovery", "lan", "--wait", "200ms"}, "want at least 1s"},
	} {
		n := runDsftp(t, testenv.NodeOptions{}, c.args...)
		if n.ExitCode() != exitUsage || !strings.Contains(n.Text(), c.want) {
			t.Errorf("dsftp %v: exit %d, want exit 2 saying %q\n%s", c.args, n.ExitCode(), c.want, n.Output)
		}
	}
}
