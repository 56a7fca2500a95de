//go:build linux

package lan_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/peers/lan"
	"github.com/dsftp/dsftp/testdata/testenv"
)

func TestAdvertCodec(t *testing.T) {
	host, client := testenv.NewSigner(t), testenv.NewSigner(t)
	c := lan.NewAdvertCodec(host, "alice", "dsftp", []ssh.PublicKey{client.PublicKey()})
	c.SetAddrs([]string{"192.0.2.7:2200"})
	msg, err := c.Encode(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	msg2, _ := c.Encode(time.Minute)
	other := lan.NewAdvertCodec(testenv.NewSigner(t), "bob", "", nil)
	a, err := other.Verify(msg)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := other.Verify(msg2)
	if err != nil {
		t.Fatal(err)
	}
	p := a.Peer
	if p.ID != ssh.FingerprintSHA256(host.PublicKey()) || p.Name != "alice" || p.User != "dsftp" ||
		!slices.Equal(p.Addrs, []string{"192.0.2.7:2200"}) || len(p.ClientKeys) != 1 ||
		string(p.ClientKeys[0].Marshal()) != string(client.PublicKey().Marshal()) {
		t.Errorf("verified advert says %+v", p)
	}
	if a.Instance != c.Instance() || a2.Instance != a.Instance || a2.Seq <= a.Seq {
		t.Errorf("instance/seq: %s/%d then %s/%d", a.Instance, a.Seq, a2.Instance, a2.Seq)
	}
	if d := time.Until(p.Expires); d < 50*time.Second || d > 61*time.Second {
		t.Errorf("expires in %v, want about a minute", d)
	}

	// The same format bound to a Discord channel is refused on the LAN.
	discord, err := advert.Encode(advert.Advert{
		Name: "mallory", Addrs: []string{"192.0.2.9:2200"}, Guild: "1234", Channel: "5678",
		Instance: advert.NewInstance(), Seq: 1,
		Issued: time.Now().Unix(), Expires: time.Now().Add(time.Minute).Unix(),
	}, testenv.NewSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify([]byte(discord)); !errors.Is(err, advert.ErrBinding) {
		t.Errorf("a Discord channel's advert on the LAN: %v, want ErrBinding", err)
	}
	// Expired.
	old, _ := c.Encode(-time.Second)
	if _, err := other.Verify(old); !errors.Is(err, advert.ErrExpired) {
		t.Errorf("expired advert: %v, want ErrExpired", err)
	}
	// Tampered.
	bad := slices.Clone(msg)
	bad[len(advert.Prefix)+5] ^= 1
	if _, err := other.Verify(bad); err == nil {
		t.Error("tampered advert verified")
	}
}

// startOnLo runs LAN discovery with codec c on loopback only, feeding a
// new registry for the instance id; stop (also run at cleanup) ends it.
func startOnLo(t *testing.T, c *lan.AdvertCodec, id string, port int) (reg *peers.Registry, stop func()) {
	t.Helper()
	reg = peers.NewRegistry(id)
	d, err := lan.New(lan.Options{Codec: c, Registry: reg, SelfID: id, Port: port, Interfaces: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go reg.Run(ctx)
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return reg, stop
}

// Two discoveries with the real advert find each other over loopback.
func TestAdvertCodecDiscovery(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	regs := map[string]*peers.Registry{}
	for _, name := range []string{"alice", "bob"} {
		host := testenv.NewSigner(t)
		c := lan.NewAdvertCodec(host, name, "", []ssh.PublicKey{testenv.NewSigner(t).PublicKey()})
		c.SetAddrs([]string{"127.0.0.1:2200"})
		reg, _ := startOnLo(t, c, ssh.FingerprintSHA256(host.PublicKey()), port)
		regs[name] = reg
	}
	waitNames(t, regs["alice"], "bob")
	waitNames(t, regs["bob"], "alice")
}

// A client-only instance (NewClientCodec) on the LAN: the share lets its
// key in at once but does not list it; the client finds the share; when
// the client stops, its leaving advert takes the key away soon.
func TestClientCodecDiscovery(t *testing.T) {
	port := testenv.FreeUDPPort(t)
	host := testenv.NewSigner(t)
	sc := lan.NewAdvertCodec(host, "alice", "", []ssh.PublicKey{testenv.NewSigner(t).PublicKey()})
	sc.SetAddrs([]string{"127.0.0.1:2200"})
	share, _ := startOnLo(t, sc, ssh.FingerprintSHA256(host.PublicKey()), port)

	id, key := testenv.NewSigner(t), testenv.NewSigner(t).PublicKey()
	cc := lan.NewClientCodec(id, "alice", []ssh.PublicKey{key})
	cc.SetAddrs([]string{"127.0.0.1:9"}) // ignored: nothing to reach
	client, stopClient := startOnLo(t, cc, ssh.FingerprintSHA256(id.PublicKey()), port)

	waitNames(t, client, "alice")
	testenv.WaitFor(t, 10*time.Second, "the share to let the client's key in", func() bool {
		_, ok := share.AuthorizedKey(key)
		return ok
	})
	if l := share.List(); len(l) != 0 {
		t.Fatalf("the share lists %+v; a client must not be a peer", l)
	}
	cl := share.Clients()
	if len(cl) != 1 || len(cl[0].Addrs) != 0 || !cl[0].ClientOnly || cl[0].Source != peers.SourceLAN {
		t.Fatalf("the share's clients: %+v", cl)
	}
	stopClient()
	testenv.WaitFor(t, 10*time.Second, "the share to drop the client's key after it left", func() bool {
		_, ok := share.AuthorizedKey(key)
		return !ok
	})
}
