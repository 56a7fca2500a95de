package punch

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSH runs over a punched stream as over TCP, both ways on the one path:
// the client checks the server's host key, and a wrong key ends the login.
func TestSSHOverPunchedStream(t *testing.T) {
	a, b := newEndpoint(t, "A", Config{}), newEndpoint(t, "B", Config{})
	hostA, hostB, client := newSigner(t), newSigner(t), newSigner(t)
	sshServer(t, a.Accept, hostA, client, "A")
	sshServer(t, b.Accept, hostB, client, "B")
	ctx := testCtx(t, 20*time.Second)
	var pa, pb *Path
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { pa, ea = a.Punch(ctx, "B", []netip.AddrPort{b.Addr()}) })
	wg.Go(func() { pb, eb = b.Punch(ctx, "A", []netip.AddrPort{a.Addr()}) })
	wg.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("punch: A: %v; B: %v", ea, eb)
	}
	for _, c := range []struct {
		p    *Path
		host ssh.PublicKey
		want string
	}{{pa, hostB.PublicKey(), "I am B\n"}, {pb, hostA.PublicKey(), "I am A\n"}} {
		s, err := c.p.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := sshClient(s, c.host, client)
		if err != nil {
			t.Fatalf("SSH login over the stream: %v", err)
		}
		sess, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Output("whoami")
		if err != nil || string(out) != c.want {
			t.Errorf("whoami: %q, %v; want %q", out, err, c.want)
		}
		cl.Close()
	}
	// The host key is the authentication: another key is refused.
	s, err := pa.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sshClient(s, hostA.PublicKey(), client); err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("login to B checking A's host key: %v; want a host key mismatch", err)
	}
}
