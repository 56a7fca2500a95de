package lan

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// FuzzDatagram feeds arbitrary datagrams to the receive path, as any host
// on the LAN can: nothing panics, a query is recognised only byte for
// byte, and every other datagram lands in exactly one of the counters.
func FuzzDatagram(f *testing.F) {
	host := testenv.NewSigner(f)
	c := NewAdvertCodec(host, "alice", "dsftp", nil)
	c.SetAddrs([]string{"127.0.0.1:2200"})
	adv, err := c.Encode(time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	// IPv6 addresses, well-formed and not (the decoder drops those).
	c.SetAddrs([]string{"[2001:db8::1]:2200", "[fd00::1]:2200", "2001:db8::1:2200", "[fe80::1%eth0]:2200", "[::ffff:192.0.2.1]:2200"})
	adv6, err := c.Encode(time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		[]byte(Query), []byte(Query + "\n"), []byte("dsftp-query/2"), adv, adv[:len(adv)/2],
		[]byte(Prefix), nil, []byte("dsftp/1 x.y"), adv6,
	} {
		f.Add(seed)
	}
	from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: Port}
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := New(Options{Codec: NewVerifyCodec(), Registry: peers.NewRegistry(""), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		d.handle(msg, from)
		s := d.Stats()
		adverts := s.Accepted + s.Own + s.Duplicate + s.Stale + s.Malformed + s.Invalid + s.RateLimited + s.Capped
		if string(msg) == Query {
			if s.Queries != 1 || s.Answered != 1 || adverts != 0 {
				t.Fatalf("the query was counted as %+v", s)
			}
			return
		}
		if s.Queries != 0 || adverts != 1 {
			t.Fatalf("datagram %q was counted as %+v; want one advert outcome", msg, s)
		}
	})
}
