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
	dir := t.TempDir()
	tr := &TURN{Addrs: []netip.Addr{in.Addr, second}, User: "dsftp", Pass: fmt.Sprintf("pw%d", os.Getpid())}
	conf := []string{
		"listening-port=" + fmt.Sprint(STUNPort),
		"listening-ip=" + in.Addr.String(),
		"listening-ip=" + SecondAddr,
		"relay-ip=" + in.Addr.String(),
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
		"no-multicast-peers",
		"userdb=" + filepath.Join(dir, "turndb"),
		"pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"log-file=stdout",
		"simple-log",
	}
	f := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(f, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr.Proc = StartIn(t, in.NS, nil, bin, "-c", f)
	for _, a := range tr.Addrs {
		tr.Servers = append(tr.Servers, netip.AddrPortFrom(a, STUNPort).String())
	}
	// coturn logs its server threads once they listen; the clients' STUN
	// retransmissions cover the moment after.
	WaitFor(t, 15*time.Second, "coturn listening on both addresses", func() bool {
		out := tr.Proc.Output.String()
		select {
		case <-tr.Proc.Done():
			t.Fatalf("turnserver exited:\n%s", out)
		default:
		}
		return strings.Contains(out, "Total General servers")
	})
	return tr
}
