package advert

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/testdata/testenv"
)

func sample(now time.Time, client ssh.PublicKey) Advert {
	return Advert{
		Name: "alice", Addrs: []string{"192.0.2.1:2222", "[2001:db8::1]:2222"}, User: "dsftp",
		ClientKeys: []string{MarshalKey(client)},
		Guild:      "100", Channel: "200", Instance: NewInstance(), Seq: 1,
		Issued: now.Unix(), Expires: now.Add(40 * time.Minute).Unix(),
	}
}

func TestRoundTrip(t *testing.T) {
	host, client := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	text, err := Encode(sample(now, client.PublicKey()), host)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "dsftp/1 ") || len(text) > MaxLen {
		t.Fatalf("bad text %q (%d chars)", text, len(text))
	}
	d, err := Decode(text)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if err := d.Check("100", "200", now); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d.Fingerprint != ssh.FingerprintSHA256(host.PublicKey()) {
		t.Errorf("fingerprint %s", d.Fingerprint)
	}
	if len(d.ClientKeys) != 1 || string(d.ClientKeys[0].Marshal()) != string(client.PublicKey().Marshal()) {
		t.Errorf("client keys %v", d.ClientKeys)
	}
	if d.Name != "alice" || len(d.Addrs) != 2 || d.Addrs[1] != "[2001:db8::1]:2222" {
		t.Errorf("decoded %+v", d.Advert)
	}
}

func TestRSAUsesSHA2(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	text, err := Encode(sample(time.Now(), testenv.NewSigner(t).PublicKey()), host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(text); err != nil {
		t.Fatalf("Decode RSA advert: %v", err)
	}
}

// tamper re-encodes the payload of text after f changes it, keeping the
// original signature.
func tamper(t *testing.T, text string, f func(string) string) string {
	body, sig, _ := strings.Cut(strings.TrimPrefix(text, Prefix), ".")
	p, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString([]byte(f(string(p)))) + "." + sig
}

func TestHostile(t *testing.T) {
	host, other := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	good, err := Encode(sample(now, other.PublicKey()), host)
	if err != nil {
		t.Fatal(err)
	}
	// The same content signed by another key, but claiming host's key.
	forged, _ := Encode(sample(now, other.PublicKey()), other)
	forged = tamper(t, forged, func(s string) string {
		return strings.Replace(s, MarshalKey(other.PublicKey()), MarshalKey(host.PublicKey()), 1)
	})
	cases := map[string]struct {
		text string
		want error
	}{
		"empty":          {"", ErrNotAdvert},
		"chat":           {"hello everyone", ErrNotAdvert},
		"future version": {"dsftp/2 abc.def", ErrNotAdvert},
		"no signature":   {Prefix + "eyJ9", ErrMalformed},
		"bad base64":     {Prefix + "!!!.???", ErrMalformed},
		"bad json":       {Prefix + base64.RawURLEncoding.EncodeToString([]byte("{")) + ".AAAA", ErrMalformed},
		"oversized":      {Prefix + strings.Repeat("A", MaxLen) + ".AAAA", ErrTooLong},
		"renamed":        {tamper(t, good, func(s string) string { return strings.Replace(s, `"alice"`, `"mallory"`, 1) }), ErrSignature},
		"rebound":        {tamper(t, good, func(s string) string { return strings.Replace(s, `"channel":"200"`, `"channel":"201"`, 1) }), ErrSignature},
		"forged key":     {forged, ErrSignature},
		"truncated sig":  {good[:len(good)-10], ErrMalformed},
	}
	for name, c := range cases {
		_, err := Decode(c.text)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	host, client := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	decode := func(a Advert) *Decoded {
		text, err := Encode(a, host)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(text)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := sample(now, client.PublicKey())
	d := decode(a)
	if err := d.Check("100", "999", now); !errors.Is(err, ErrBinding) {
		t.Errorf("other channel: %v", err)
	}
	if err := d.Check("999", "200", now); !errors.Is(err, ErrBinding) {
		t.Errorf("other guild: %v", err)
	}
	if err := d.Check("100", "200", now.Add(41*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v", err)
	}
	long := a
	long.Expires = now.Add(3 * time.Hour).Unix()
	if err := decode(long).Check("100", "200", now); !errors.Is(err, ErrExpired) {
		t.Errorf("TTL above MaxTTL: %v", err)
	}
	future := a
	future.Issued, future.Expires = now.Add(time.Hour).Unix(), now.Add(90*time.Minute).Unix()
	if err := decode(future).Check("100", "200", now); !errors.Is(err, ErrFuture) {
		t.Errorf("future: %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	host := testenv.NewSigner(t)
	a := sample(time.Now(), testenv.NewSigner(t).PublicKey())
	for i := 0; i < 100; i++ {
		a.Addrs = append(a.Addrs, "203.0.113.250:65535")
	}
	if _, err := Encode(a, host); !errors.Is(err, ErrTooLong) {
		t.Fatalf("100 addresses: %v, want ErrTooLong", err)
	}
	// The largest advert dsftp itself makes fits: 8 addresses, 2 keys,
	// a 64-byte name.
	a.Addrs = a.Addrs[:8]
	a.Name = strings.Repeat("n", 64)
	a.ClientKeys = append(a.ClientKeys, MarshalKey(testenv.NewSigner(t).PublicKey()))
	if text, err := Encode(a, host); err != nil {
		t.Fatalf("typical advert: %v", err)
	} else {
		t.Logf("largest typical advert: %d characters", len(text))
	}
}

func TestBadAddrsDropped(t *testing.T) {
	host := testenv.NewSigner(t)
	a := sample(time.Now(), testenv.NewSigner(t).PublicKey())
	a.Addrs = []string{"ok:1", "no port", "a/b:1", "x:", "\x00:1", "good.example:22"}
	text, _ := Encode(a, host)
	d, err := Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Addrs, ",") != "ok:1,good.example:22" {
		t.Fatalf("addrs %q", d.Addrs)
	}
}

// A client-only advert (an instance that shares nothing) round-trips with
// its flag, its client key and no addresses.
func TestClientOnlyRoundTrip(t *testing.T) {
	id, client := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	a := sample(now, client.PublicKey())
	a.Addrs, a.Client, a.User = nil, true, ""
	text, err := Encode(a, id)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(text)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if err := d.Check("100", "200", now); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !d.Client || len(d.Addrs) != 0 || d.Fingerprint != ssh.FingerprintSHA256(id.PublicKey()) {
		t.Errorf("decoded client=%v addrs=%v fingerprint=%s", d.Client, d.Addrs, d.Fingerprint)
	}
	if len(d.ClientKeys) != 1 || string(d.ClientKeys[0].Marshal()) != string(client.PublicKey().Marshal()) {
		t.Errorf("client keys %v", d.ClientKeys)
	}
	// A share's advert does not carry the field at all, so receivers that
	// predate it see exactly what they saw before.
	share, _ := Encode(sample(now, client.PublicKey()), id)
	body, _, _ := strings.Cut(strings.TrimPrefix(share, Prefix), ".")
	if p, _ := base64.RawURLEncoding.DecodeString(body); strings.Contains(string(p), `"client"`) {
		t.Errorf("a share's advert mentions the client flag: %s", p)
	}
}

// A client-only advert with addresses (a share in disguise) or without a
// client key is malformed, even when correctly signed.
func TestClientOnlyInvalid(t *testing.T) {
	id, client := testenv.NewSigner(t), testenv.NewSigner(t)
	now := time.Now()
	withAddrs := sample(now, client.PublicKey())
	withAddrs.Client = true
	noKeys := sample(now, client.PublicKey())
	noKeys.Client, noKeys.Addrs, noKeys.ClientKeys = true, nil, nil
	for name, a := range map[string]Advert{"with addresses": withAddrs, "without client keys": noKeys} {
		if _, err := Encode(a, id); !errors.Is(err, ErrMalformed) {
			t.Errorf("Encode %s: %v, want ErrMalformed", name, err)
		}
		// Signed by hand, as a hostile sender would.
		a.HostKey = MarshalKey(id.PublicKey())
		payload, _ := json.Marshal(a)
		sig, err := sign(id, append([]byte(Domain), payload...))
		if err != nil {
			t.Fatal(err)
		}
		text := Prefix + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(ssh.Marshal(sig))
		if _, err := Decode(text); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode %s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestRoutesFields: unreachable and via round-trip; a via entry that is
// not a fingerprint is dropped, and more than MaxVia is malformed.
func TestRoutesFields(t *testing.T) {
	host := testenv.NewSigner(t)
	now := time.Now()
	a := sample(now, testenv.NewSigner(t).PublicKey())
	fp := ssh.FingerprintSHA256(testenv.NewSigner(t).PublicKey())
	a.Unreachable, a.Via = true, []string{fp, "not a fingerprint"}
	text, err := Encode(a, host)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Peer("discord")
	if !p.Unreachable || len(p.Via) != 1 || p.Via[0] != fp {
		t.Fatalf("decoded unreachable=%v via=%q; want true and [%s]", p.Unreachable, p.Via, fp)
	}
	a.Via = []string{fp, fp, fp, fp, fp}
	text, err = Encode(a, host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(text); !errors.Is(err, ErrMalformed) {
		t.Fatalf("5 via entries: %v; want ErrMalformed", err)
	}
}

// The QUIC path's candidates travel as literal ip:port (names, ports 0
// and unspecified addresses are dropped) with a known NAT type; more than
// MaxUDP make the advert malformed.
func TestUDPFields(t *testing.T) {
	host := testenv.NewSigner(t)
	a := sample(time.Now(), testenv.NewSigner(t).PublicKey())
	a.UDP = []string{"198.51.100.7:2200", "host.example:2200", "192.168.1.5:0", "0.0.0.0:2200", "[2001:db8::5]:2200"}
	a.NAT = "cone"
	text, err := Encode(a, host)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Peer("discord")
	if strings.Join(p.UDP, ",") != "198.51.100.7:2200,[2001:db8::5]:2200" || p.NAT != "cone" {
		t.Fatalf("decoded udp=%q nat=%q", p.UDP, p.NAT)
	}
	a.NAT = "sneaky\x00"
	text, _ = Encode(a, host)
	if d, err := Decode(text); err != nil || d.NAT != "" {
		t.Fatalf("unknown NAT type: %v, %q; want it dropped", err, d.NAT)
	}
	a.UDP = make([]string, MaxUDP+1)
	for i := range a.UDP {
		a.UDP[i] = "198.51.100.7:2200"
	}
	text, _ = Encode(a, host)
	if _, err := Decode(text); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d UDP candidates: %v; want ErrMalformed", len(a.UDP), err)
	}
}

// IPv6 travels in brackets, without a zone, and not link-local or
// IPv4-mapped; anything else in the address lists is dropped, in both the
// TCP addresses and the UDP candidates, and the rest of the advert stands.
func TestIPv6Addrs(t *testing.T) {
	host := testenv.NewSigner(t)
	a := sample(time.Now(), testenv.NewSigner(t).PublicKey())
	good := []string{"[2001:db8::1]:2200", "[fd00::2]:2200", "[::1]:2200", "[2001:db8:0:0:0:0:0:3]:2200"}
	bad := []string{
		"2001:db8::1:2200",                             // no brackets: host and port cannot be told apart
		"[2001:db8::1]",                                // no port
		"[2001:db8::1]:",                               // empty port
		"[2001:db8::1]:0",                              // port 0
		"[2001:db8::1]:65536",                          // port out of range
		"[2001:db8::1]:ssh",                            // port by name
		"[2001:db8::1:2200",                            // unclosed bracket
		"2001:db8::1]:2200",                            // unopened bracket
		"[2001:db8::g]:2200",                           // not hex
		"[2001:db8::1::2]:2200",                        // two ::
		"[1:2:3:4:5:6:7:8:9]:2200",                     // nine groups
		"[fe80::1%eth0]:2200",                          // zone: only meaningful on the sender's host
		"[fe80::1%25eth0]:2200",                        // zone, URL-escaped
		"[fe80::1]:2200",                               // link-local: needs a zone
		"[::ffff:192.0.2.1]:2200",                      // IPv4-mapped
		"[192.0.2.1]:2200",                             // IPv4 in brackets
		"[[2001:db8::1]]:2200",                         // nested brackets
		"[2001:db8::1]x:2200",                          // junk after the bracket
		"[]:2200",                                      // empty host
		"[2001:db8::1]:22:00",                          // two ports
		"[2001:0db8:0000:0000:0000:0000:0000:0001%]:1", // empty zone
	}
	a.Addrs = append(slices.Clone(good[:3]), bad[len(bad)-MaxAddrs+3:]...)
	a.UDP = append(slices.Clone(good), bad[:MaxUDP-len(good)]...)
	text, err := Encode(a, host)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Addrs, good[:3]) {
		t.Errorf("addrs %q; want %q", d.Addrs, good[:3])
	}
	if !slices.Equal(d.UDP, good) {
		t.Errorf("udp %q; want %q", d.UDP, good)
	}
	for _, s := range bad {
		if validAddr(s) || validAddrPort(s) {
			t.Errorf("%q accepted (addr %v, udp %v)", s, validAddr(s), validAddrPort(s))
		}
	}
}

// FuzzDecode feeds arbitrary advert text to Decode: nothing panics, and
// every address a decoded advert keeps splits into host and port, an IPv6
// host being a bracketed address without a zone.
func FuzzDecode(f *testing.F) {
	host := testenv.NewSigner(f)
	a := sample(time.Now(), testenv.NewSigner(f).PublicKey())
	a.UDP = []string{"198.51.100.7:2200", "[2001:db8::5]:2200", "[fd00::5]:2200"}
	good, err := Encode(a, host)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	for _, s := range []string{"2001:db8::1:2200", "[fe80::1%eth0]:2200", "[::ffff:192.0.2.1]:2200", "[2001:db8::1", "[]:1"} {
		b := a
		b.Addrs, b.UDP = []string{s}, []string{s}
		text, err := Encode(b, host)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := Decode(text)
		if err != nil {
			return
		}
		for _, s := range append(slices.Clone(d.Addrs), d.UDP...) {
			h, p, err := net.SplitHostPort(s)
			if err != nil || h == "" || p == "" {
				t.Fatalf("kept %q: %v", s, err)
			}
			if strings.Contains(h, ":") {
				ip, err := netip.ParseAddr(h)
				if err != nil || ip.Zone() != "" || !ip.Is6() || ip.Is4In6() {
					t.Fatalf("kept IPv6 host %q of %q", h, s)
				}
			}
		}
		for _, s := range d.UDP {
			if _, err := netip.ParseAddrPort(s); err != nil {
				t.Fatalf("kept UDP candidate %q: %v", s, err)
			}
		}
	})
}

// FuzzAddrs feeds arbitrary strings to the address checks: what they keep
// splits into host and port, an IPv6 host being a bracketed address
// without a zone, and a UDP candidate is a literal address and port.
func FuzzAddrs(f *testing.F) {
	for _, s := range []string{"192.0.2.1:2200", "[2001:db8::1]:2200", "host.example:22", "2001:db8::1:2200",
		"[fe80::1%eth0]:2200", "[::ffff:192.0.2.1]:2200", "[192.0.2.1]:2200", "[2001:db8::1]x:2200", "[]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validAddr(s) {
			h, p, err := net.SplitHostPort(s)
			if err != nil || h == "" || p == "" {
				t.Fatalf("kept %q: %v", s, err)
			}
			ip, err := netip.ParseAddr(h)
			if (strings.HasPrefix(s, "[") || strings.Contains(h, ":")) && (err != nil || !ip.Is6()) {
				t.Fatalf("kept %q: brackets or colons around %q, which is no IPv6 address", s, h)
			}
			if err == nil && (ip.Zone() != "" || ip.Is4In6()) {
				t.Fatalf("kept %q: address %v", s, ip)
			}
		}
		if validAddrPort(s) {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
				t.Fatalf("kept UDP candidate %q: %v", s, err)
			}
		}
	})
}

// The relayed candidate travels as a literal ip:port into the peer entry;
// anything else (a name, port 0, a URL with credentials) is dropped.
func TestRelayField(t *testing.T) {
	host := testenv.NewSigner(t)
	a := sample(time.Now(), testenv.NewSigner(t).PublicKey())
	for _, c := range []struct{ in, want string }{
		{"198.51.100.9:49152", "198.51.100.9:49152"},
		{"[2001:db8::9]:49152", "[2001:db8::9]:49152"},
		{"turn.example.org:49152", ""},
		{"198.51.100.9:0", ""},
		{"turn://u:p@198.51.100.9:3478", ""},
	} {
		a.Relay = c.in
		text, err := Encode(a, host)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(text)
		if err != nil {
			t.Fatal(err)
		}
		if p := d.Peer("discord"); p.Relay != c.want {
			t.Errorf("relay %q decoded as %q; want %q", c.in, p.Relay, c.want)
		}
	}
}
