//go:build linux

package instance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/dsftp/dsftp/peers/route"
	"github.com/dsftp/dsftp/testdata/testenv"
	"golang.org/x/crypto/ssh"
)

// TestReverseSFTPOnlyHolder: c serves SFTP straight on channels of its
// reverse connection to a (no inner SSH), so nobody but a, the member c
// dialed and offered it to, may open one: not a member whose share c
// merely reads (it opens channels back over c's ordinary connection), not
// another member asking a's share, and not a once its advert is gone.
func TestReverseSFTPOnlyHolder(t *testing.T) {
	t.Parallel()
	data := randomData(t, 64<<10)
	l := newRouteLab(t)
	a := l.add("a", t.TempDir(), true, memberOpts{})
	c := l.add("c", shareDir(t, "f", data), false, memberOpts{advertise: deadAddr(t), keepRoutes: true, conns: 1})
	cID := c.srv.Fingerprint()
	waitFor(t, 15*time.Second, "a holds c's reverse connection", func() bool { return a.routes.Has(cID) })
	b := l.add("b", t.TempDir(), true, memberOpts{})
	ctx := testenv.Context(t, time.Minute)

	// The holder reads over SFTP channels on the reverse connection.
	if got, err := a.readFile(ctx, l.entry("c"), "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a reads c through the reverse connection: %d bytes, %v", len(got), err)
	}
	if r := a.pool.Route(cID); r != "reverse" {
		t.Fatalf("a reaches c by %q, want reverse", r)
	}

	// d is a member whose share c reads; it tries to open c's share over
	// that ordinary connection.
	d, tried := backOpener(t)
	l.reg.Upsert(d)
	_, _ = c.readFile(ctx, d, "x")
	select {
	case errs := <-tried:
		for typ, err := range errs {
			if err == nil {
				t.Errorf("d opened a %s channel to c's share over c's connection to d", typ)
			}
		}
	case <-ctx.Done():
		t.Fatal("c never connected to d")
	}

	// b, a member with a live advert, asks a's share for such a channel.
	toA, err := ssh.Dial("tcp", a.srv.Addrs()[0].String(), &ssh.ClientConfig{User: "dsftp",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(b.pool.RunKey())}, HostKeyCallback: ssh.FixedHostKey(a.srv.HostKey()),
		Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("b logs in to a: %v", err)
	}
	defer toA.Close()
	if _, _, err := toA.OpenChannel(route.ChannelSFTP, ssh.Marshal(route.SFTPOpen{Conn: 1})); err == nil {
		t.Error("b opened an sftp channel on a's share")
	}

	// a without a live advert: c refuses its new channels. A fresh pool
	// on a's route table holds no connection to c yet.
	fresh, err := pool.New(pool.Options{Timeout: 3 * time.Second, Routes: a.routes, SelfID: a.srv.Fingerprint(), User: "dsftp",
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"), Logger: l.log.With("member", "a2")})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	aPeer := l.entry("a")
	l.reg.Remove(aPeer.ID)
	if _, err := readWith(ctx, fresh, l.entry("c"), "f"); err == nil {
		t.Error("a read c's share after its advert was gone")
	}
	l.reg.Upsert(aPeer)
	// The pool waits a little before it dials a peer that just failed.
	waitFor(t, 15*time.Second, "a reads c again once its advert is back", func() bool {
		got, err := readWith(ctx, fresh, l.entry("c"), "f")
		return err == nil && bytes.Equal(got, data)
	})
}

func readWith(ctx context.Context, p *pool.Pool, peer peers.Peer, rel string) ([]byte, error) {
	r, err := p.OpenReader(ctx, peer, rel, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(r)
	return buf.Bytes(), err
}

// backOpener is an SSH server advertised as member d that takes any login
// and then tries to open the reverse channels back to the client; it
// reports the errors of its first connection.
func backOpener(t *testing.T) (peers.Peer, <-chan map[string]error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tried := make(chan map[string]error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
		if err != nil {
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				_ = ch.Reject(ssh.Prohibited, "nothing here")
			}
		}()
		errs := map[string]error{}
		for _, typ := range []string{route.ChannelSFTP, route.ChannelShare} {
			ch, creqs, err := sc.OpenChannel(typ, ssh.Marshal(route.SFTPOpen{Conn: 1}))
			if err == nil {
				go ssh.DiscardRequests(creqs)
				ch.Close()
			}
			errs[typ] = err
		}
		tried <- errs
	}()
	return peers.Peer{ID: ssh.FingerprintSHA256(hk.PublicKey()), Name: "d", Addrs: []string{ln.Addr().String()},
		User: "dsftp", HostKey: hk.PublicKey(), Source: "discord"}, tried
}
