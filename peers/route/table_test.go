package route

import (
	"net"
	"testing"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

type fakeMembers map[string]peers.Entry

func (f fakeMembers) ByID(id string) (peers.Entry, bool) { e, ok := f[id]; return e, ok }

func (f fakeMembers) ClientKeyMember(fp string) (string, bool) {
	for id, e := range f {
		for _, k := range e.ClientKeys {
			if ssh.FingerprintSHA256(k) == fp {
				return id, true
			}
		}
	}
	return "", false
}

// TestRoutesRefuse: the route table takes an offer only from the member
// whose advert lists the login key, and relays only from a member with a
// live advert to a member whose reverse connection it holds.
func TestRoutesRefuse(t *testing.T) {
	ck, bk := newSigner(t), newSigner(t)
	cFP, bFP := "SHA256:c", "SHA256:b"
	m := fakeMembers{
		cFP: {Peer: peers.Peer{ID: cFP, ClientKeys: []ssh.PublicKey{ck.PublicKey()}}},
		bFP: {Peer: peers.Peer{ID: bFP, ClientKeys: []ssh.PublicKey{bk.PublicKey()}}},
	}
	r := NewTable(m, nil)
	open := fakeConn{}
	fp := func(s ssh.Signer) string { return ssh.FingerprintSHA256(s.PublicKey()) }

	if _, err := r.Offer(fp(bk), cFP, open); err == nil {
		t.Error("b's login key offered c's share and was accepted")
	}
	if _, err := r.Offer(fp(ck), "SHA256:stranger", open); err == nil {
		t.Error("an offer for a non-member was accepted")
	}
	if _, err := r.Relay(fp(bk), cFP); err == nil {
		t.Error("relay to c without its reverse connection was accepted")
	}
	release, err := r.Offer(fp(ck), cFP, open)
	if err != nil {
		t.Fatalf("c's own offer: %v", err)
	}
	if _, err := r.Relay(fp(newSigner(t)), cFP); err == nil {
		t.Error("relay for a key of no member was accepted")
	}
	if _, err := r.Relay(fp(bk), "SHA256:stranger"); err == nil {
		t.Error("relay to an unknown fingerprint was accepted")
	}
	c, err := r.Relay(fp(bk), cFP)
	if err != nil {
		t.Fatalf("relay from b to c: %v", err)
	}
	c.Close()
	release()
	if r.Has(cFP) {
		t.Error("a released offer is still held")
	}
}

// fakeConn is an SSH connection whose channels open and do nothing.
type fakeConn struct{ ssh.Conn }

func (fakeConn) OpenChannel(string, []byte) (ssh.Channel, <-chan *ssh.Request, error) {
	reqs := make(chan *ssh.Request)
	close(reqs)
	return fakeChannel{}, reqs, nil
}
func (fakeConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }
func (fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }

type fakeChannel struct{ ssh.Channel }

func (fakeChannel) Close() error { return nil }

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	return testenv.NewSigner(t)
}

// TestRouteAddrs: the pseudo-addresses round-trip and rank direct before
// punched before reverse before relay before TURN.
func TestRouteAddrs(t *testing.T) {
	r := RelayVia("SHA256:v")
	if via, ok := RelayOf(r); !ok || via != "SHA256:v" {
		t.Errorf("RelayOf(%q) = %q, %v", r, via, ok)
	}
	if _, ok := RelayOf("127.0.0.1:2200"); ok {
		t.Error("an address was taken for a relay")
	}
	d, p, rv, rl, tu := Rank("127.0.0.1:2200"), Rank(Punched), Rank(Reverse), Rank(r), Rank(TURN)
	if !(d < p && p < rv && rv < rl && rl < tu) {
		t.Errorf("ranks direct %d, punched %d, reverse %d, relay %d, turn %d; want increasing", d, p, rv, rl, tu)
	}
}
