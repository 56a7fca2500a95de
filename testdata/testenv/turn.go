//go:build linux

package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// STUN and TURN on the simulated internet: coturn (Debian's turnserver)
// in the internet namespace, on two addresses so that a client can tell a
// symmetric NAT (a new port per destination) from the others.

// SecondAddr is the internet namespace's second address, for the second
// STUN server (home routers take the odd addresses from .1 up).
const SecondAddr = "198.20.113.252"

// STUNPort is the port coturn listens on.
const STUNPort = 3478

// TURN is a running coturn.
type TURN struct {
	// Servers are the STUN/TURN server addresses, HOST:PORT: one on each
	// of the internet namespace's two addresses.
	Servers []string
	// Addrs are the servers' IP addresses.
	Addrs []netip.Addr
	// User and Pass are the TURN long-term credentials.
	User, Pass string
	Proc       *Process
}

// StartTURN starts coturn in the internet namespace, listening on the
// namespace's address and SecondAddr only, with its configuration,
// database and log in the test's temporary directory, and waits until it
// answers. It is killed by PID at cleanup.
func (in *Internet) StartTURN(t testing.TB) *TURN {
	t.Helper()
	bin := Require(t, "turnserver")[0]
	second := netip.MustParseAddr(SecondAddr)
	in.mu.Lock()
	if !in.second {
		MustRun(t, "ip", "-n", in.NS, "addr", "add", SecondAddr+"/"+strings.Split(PublicWAN, "/")[1], "dev", "inet")
		in.second = true
	}
	in.mu.Unlock()
	tr := &TURN{Addrs: []netip.Addr{in.Addr, second}}
	f := tr.config(t, STUNPort, in.Addr, "listening-ip="+SecondAddr, "no-multicast-peers")
	tr.Proc = StartIn(t, in.NS, nil, bin, "-c", f)
	for _, a := range tr.Addrs {
		tr.Servers = append(tr.Servers, netip.AddrPortFrom(a, STUNPort).String())
	}
	tr.wait(t)
	return tr
}

// StartLoopbackTURN starts coturn on 127.0.0.1 at port, in the test's
// own network namespace, relaying from 127.0.0.1 to loopback peers, with
// allocations that last lifetime (so that a client refreshes one within
// seconds), and waits until it answers. It is killed by PID at cleanup.
func StartLoopbackTURN(t testing.TB, port int, lifetime time.Duration) *TURN {
	t.Helper()
	bin := Require(t, "turnserver")[0]
	lo := netip.MustParseAddr("127.0.0.1")
	tr := &TURN{Addrs: []netip.Addr{lo}, Servers: []string{netip.AddrPortFrom(lo, uint16(port)).String()}}
	f := tr.config(t, port, lo, "allow-loopback-peers", "no-rfc5780", "no-tcp",
		fmt.Sprintf("alt-listening-port=%d", port+1), fmt.Sprintf("max-allocate-lifetime=%d", int(lifetime.Seconds())))
	tr.Proc = Start(t, nil, bin, "-c", f)
	tr.wait(t)
	return tr
}

// config writes coturn's configuration into a temporary directory,
// listening on addr:port (and whatever extra adds) and relaying from
// addr, and sets the credentials.
func (tr *TURN) config(t testing.TB, port int, addr netip.Addr, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	tr.User, tr.Pass = "dsftp", fmt.Sprintf("pw%d", os.Getpid())
	conf := append([]string{
		"listening-port=" + fmt.Sprint(port),
		"listening-ip=" + addr.String(),
		"relay-ip=" + addr.String(),
		"min-port=49152",
		"max-port=49999",
		"realm=dsftp.test",
		"lt-cred-mech",
		"user=" + tr.User + ":" + tr.Pass,
		"fingerprint",
		"no-tls",
		"no-dtls",
		"no-cli",
		"no-software-attribute",
		"userdb=" + filepath.Join(dir, "turndb"),
		"pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"log-file=stdout",
		"simple-log",
	}, extra...)
	f := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(f, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// wait returns once coturn listens.
func (tr *TURN) wait(t testing.TB) {
	t.Helper()
	// coturn logs its server threads once they listen; the clients' STUN
	// retransmissions cover the moment after.
	WaitFor(t, 15*time.Second, "coturn listening", func() bool {
		out := tr.Proc.Output.String()
		select {
		case <-tr.Proc.Done():
			t.Fatalf("turnserver exited:\n%s", out)
		default:
		}
		return strings.Contains(out, "Total General servers")
	})
}
