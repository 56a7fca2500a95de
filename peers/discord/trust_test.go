//go:build linux

package discord

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers/advert"
)

// sshServer is a minimal SSH server with host key host that accepts a
// client key only when auth says so, as the share does through
// share.KeyAuthorizer.
func sshServer(t *testing.T, host ssh.Signer, auth func(ssh.PublicKey) (string, bool)) string {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if _, ok := auth(key); ok {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not in a live advert")
		},
	}
	cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "test server")
				}
				sc.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, client ssh.Signer, hostKey ssh.PublicKey) error {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: "dsftp", Auth: []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 5 * time.Second,
	})
	if err == nil {
		c.Close()
	}
	return err
}

// TestTrust runs SSH between two discovered peers: each side trusts
// exactly what the other advertised, and nothing else.
func TestTrust(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, _ := e.bot(t)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob")
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	addr := sshServer(t, a.host, a.reg.AuthorizedKey) // alice's share

	alice, ok := b.reg.ByID(a.fp)
	if !ok {
		t.Fatal("bob does not know alice")
	}
	if err := dial(addr, b.client, alice.HostKey); err != nil {
		t.Fatalf("bob cannot log in to alice with his advertised key: %v", err)
	}
	stranger := newSigner(t)
	if err := dial(addr, stranger, alice.HostKey); err == nil {
		t.Error("alice's share accepted a key from outside the channel")
	}
	if err := dial(addr, b.host, alice.HostKey); err == nil {
		t.Error("alice's share accepted bob's host key as a client key")
	}
	// A server with another host key (a man in the middle) is refused by
	// a client that pins the advertised one.
	mitm := sshServer(t, newSigner(t), func(ssh.PublicKey) (string, bool) { return "", true })
	if err := dial(mitm, b.client, alice.HostKey); err == nil || !strings.Contains(err.Error(), "host key") {
		t.Errorf("bob accepted a host key alice did not advertise: %v", err)
	}
	// When bob leaves, his key stops working for new connections.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.d.Close(ctx)
	waitFor(t, 10*time.Second, "alice to drop bob", func() bool { return !a.has(b.fp) })
	if err := dial(addr, b.client, alice.HostKey); err == nil {
		t.Error("alice's share still accepts bob's key after his advert was deleted")
	}
}

// TestNoSecrets checks every message the fake holds, and the logs, for the
// tokens and private keys the discovery had.
func TestNoSecrets(t *testing.T) {
	e := newEnv(t)
	var tokens, refreshing []string
	var nodes []*node
	for _, name := range []string{"alice", "bob", "carol"} {
		tok, id := e.bot(t)
		tokens = append(tokens, tok)
		refreshing = append(refreshing, id)
		nodes = append(nodes, e.start(t, tok, name, func(c *Config) { c.Refresh = 200 * time.Millisecond }))
	}
	shared, _ := e.bot(t)
	tokens = append(tokens, shared)
	nodes = append(nodes, e.start(t, shared, "dave"), e.start(t, shared, "erin"))
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "everyone to see everyone", func() bool { return len(n.reg.List()) == len(nodes)-1 })
	}
	before := e.fake.Writes()
	waitFor(t, 10*time.Second, "a few refreshes of every refreshing node", func() bool {
		now := e.fake.Writes()
		for _, id := range refreshing {
			if now[id]-before[id] < 4 { // two re-posts, each with the delete of the one before
				return false
			}
		}
		return true
	})
	moved := []string{"198.51.100.1:2222"}
	nodes[0].d.SetAddrs(moved)
	waitFor(t, 10*time.Second, "alice's advert with her new address", func() bool {
		ads := advertsBy(e, refreshing[0])
		return len(ads) > 0 && slices.Equal(ads[len(ads)-1].Addrs, moved)
	})

	var secrets []string
	for _, tok := range tokens {
		secrets = append(secrets, tok, "Bot "+tok)
	}
	privKeys.Lock()
	for _, k := range privKeys.keys {
		seed := k.Seed()
		secrets = append(secrets, hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed),
			base64.RawURLEncoding.EncodeToString(seed), base64.StdEncoding.EncodeToString(k)[:40])
		if block, err := ssh.MarshalPrivateKey(k, ""); err == nil {
			body := string(pem.EncodeToMemory(block))
			secrets = append(secrets, strings.Split(body, "\n")[1])
		}
	}
	privKeys.Unlock()
	var texts []string
	msgs := e.fake.Messages(e.channel)
	if len(msgs) == 0 {
		t.Fatal("no messages to check")
	}
	for _, m := range msgs {
		texts = append(texts, m.Content)
		if d, err := advert.Decode(m.Content); err == nil {
			payload, _ := base64.RawURLEncoding.DecodeString(m.Content[len(advert.Prefix):strings.IndexByte(m.Content, '.')])
			texts = append(texts, string(payload))
			if d.Advert.Name == "" {
				t.Error("decoded advert has no name")
			}
		} else {
			t.Errorf("message %s in #dsftp is not a valid advert: %v", m.ID, err)
		}
	}
	for i, text := range append(texts, e.logs.String()) {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Fatalf("secret %.6s… found in channel message or log", s)
			}
		}
		for _, word := range []string{"PRIVATE KEY", "password", "passwd", "token"} {
			if i < len(texts) && bytes.Contains(bytes.ToLower([]byte(text)), bytes.ToLower([]byte(word))) {
				t.Errorf("%q appears in a message or log line", word)
			}
		}
	}
}
