package punch

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// stunServer answers binding requests on loopback, built from pion/stun's
// message functions; shift is added to the port it reports (a NAT that
// maps each destination to another port).
func stunServer(t testing.TB, shift int) string {
	t.Helper()
	return stunServerAt(t, net.IPv4(127, 0, 0, 1), shift)
}

// stunServerAt is stunServer listening on ip.
func stunServerAt(t testing.TB, ip net.IP, shift int) string {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := uc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			resp, err := stun.Build(req, stun.BindingSuccess,
				&stun.XORMappedAddress{IP: from.IP, Port: from.Port + shift}, stun.Fingerprint)
			if err != nil {
				continue
			}
			uc.WriteToUDP(resp.Raw, from)
		}
	}()
	return uc.LocalAddr().String()
}

// STUN from the QUIC socket: the servers see the socket's own address, and
// QUIC keeps working on the same socket while junk that is neither QUIC
// nor STUN arrives.
func TestSTUN(t *testing.T) {
	a, b := newEndpoint(t, "A", Config{stunTimeout: time.Second}), newEndpoint(t, "B", Config{})
	ctx := testCtx(t, 15*time.Second)
	junk, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(a.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	junk.Write(bytes.Repeat([]byte{0}, 100))
	junk.Write([]byte{0x01, 0x01, 0, 0})

	servers := []string{stunServer(t, 0), stunServer(t, 0)}
	ms := a.Discover(ctx, servers)
	pub, err := PublicAddr(ms)
	if err != nil {
		t.Fatal(err)
	}
	if pub != a.Addr() {
		t.Errorf("public address %v, want the socket's own %v (no NAT on loopback)", pub, a.Addr())
	}
	if nat := Classify(a.Addr(), ms); nat != NATNone {
		t.Errorf("NAT %q, want %q", nat, NATNone)
	}
	// A NAT that gives each destination its own port.
	ms = a.Discover(ctx, []string{stunServer(t, 0), stunServer(t, 1)})
	if nat := Classify(a.Addr(), ms); nat != NATSymmetric {
		t.Errorf("NAT %q, want %q", nat, NATSymmetric)
	}
	// The socket still speaks QUIC.
	p, err := b.Dial(ctx, a.Addr(), "A")
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	// A server that does not answer fails within STUNTimeout (here
	// shortened to a second), saying so.
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ms = a.Discover(ctx, []string{silent.LocalAddr().String()})
	if _, err := PublicAddr(ms); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("silent server: %v", err)
	}
}

// An answer from another address than the server asked is ignored.
func TestSTUNAnswerFromElsewhere(t *testing.T) {
	a := newEndpoint(t, "A", Config{stunTimeout: time.Second})
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	liar, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	go func() {
		buf := make([]byte, 1500)
		n, _, err := silent.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil {
			return
		}
		resp, _ := stun.Build(req, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(6, 6, 6, 6), Port: 666})
		liar.WriteToUDP(resp.Raw, net.UDPAddrFromAddrPort(a.Addr()))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms := a.Discover(ctx, []string{silent.LocalAddr().String()})
	if ms[0].Err == nil {
		t.Fatalf("took the answer %v from another address", ms[0].Public)
	}
}

func TestParseSTUN(t *testing.T) {
	def, err := ParseSTUN(nil)
	if err != nil || len(def) != 2 || def[0] != "stun.l.google.com:19302" {
		t.Errorf("defaults %q, %v", def, err)
	}
	if s, err := ParseSTUN([]string{"none"}); err != nil || s != nil {
		t.Errorf("none: %q, %v", s, err)
	}
	if s, err := ParseSTUN([]string{"stun.example.org:3478", "[2001:db8::1]:3478"}); err != nil || len(s) != 2 {
		t.Errorf("two servers: %q, %v", s, err)
	}
	for _, bad := range [][]string{{"stun.example.org"}, {"stun.example.org:0"}, {"x:99999"}, {":3478"}, {"none", "a:1"}} {
		if _, err := ParseSTUN(bad); err == nil {
			t.Errorf("ParseSTUN(%q) accepted", bad)
		}
	}
}

func FuzzParseBindingSuccess(f *testing.F) {
	m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(1, 2, 3, 4), Port: 5}, stun.Fingerprint)
	f.Add(m.Raw)
	f.Add([]byte{0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, pub, ok := parseBindingSuccess(b)
		if ok && (!pub.IsValid() || pub.Port() == 0) {
			t.Fatalf("accepted %v", pub)
		}
	})
}

func FuzzParseServerName(f *testing.F) {
	f.Add(ServerName("A", "B"))
	f.Add("0123456789abcdef.0123456789abcdef.dsftp")
	f.Add("..dsftp")
	f.Fuzz(func(t *testing.T, s string) {
		to, from, ok := parseServerName(s)
		if ok && (to+"."+from+".dsftp" != s) {
			t.Fatalf("%q parsed as %q, %q", s, to, from)
		}
	})
}
