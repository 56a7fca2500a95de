//go:build linux

package discord

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/advert"
	"github.com/dsftp/dsftp/testdata/discordfake"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// env is one fake Discord with a guild and a #dsftp channel.
type env struct {
	fake    *discordfake.Server
	guild   string
	channel string
	logs    *syncBuffer
	nbots   atomic.Int32
}

func newEnv(t testing.TB, hooks ...func(*discordfake.Server)) *env {
	t.Helper()
	f := discordfake.New()
	for _, h := range hooks {
		h(f)
	}
	e := &env{fake: f, logs: &syncBuffer{}}
	e.guild = f.AddGuild("friends")
	f.AddChannel(e.guild, "general")
	e.channel = f.AddChannel(e.guild, "dsftp")
	if err := f.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return e
}

// bot adds a bot with the Message Content intent and returns its token
// and user ID.
func (e *env) bot(t testing.TB, opts ...func(*discordfake.Bot)) (token, id string) {
	n := e.nbots.Add(1)
	b := discordfake.Bot{Token: fmt.Sprintf("tok%d.%s", n, randHex(12)), Name: fmt.Sprintf("bot%d", n), MessageContent: true, Guilds: []string{e.guild}}
	for _, o := range opts {
		o(&b)
	}
	return b.Token, e.fake.AddBot(b)
}

// node is one running discovery with its own keys and registry.
type node struct {
	d      *Discovery
	reg    *peers.Registry
	host   ssh.Signer
	client ssh.Signer
	fp     string
	token  string
	// started is when Start was called; posted when it returned (the
	// first advert was posted just before).
	started, posted time.Time
}

func newSigner(t testing.TB) ssh.Signer {
	s, _ := testenv.NewEd25519(t)
	return s
}

// privKeys remembers every private key the tests made, for the test that
// no secret reaches the channel.
var privKeys struct {
	sync.Mutex
	keys []ed25519.PrivateKey
}

func (e *env) config(t testing.TB, token, name string) (Config, ssh.Signer, ssh.Signer) {
	host, hp := testenv.NewEd25519(t)
	client, cp := testenv.NewEd25519(t)
	privKeys.Lock()
	privKeys.keys = append(privKeys.keys, hp, cp)
	privKeys.Unlock()
	return Config{
		Token: token, APIBase: e.fake.URL(), Name: name,
		Signer: host, ClientKeys: []ssh.PublicKey{client.PublicKey()},
		Addrs:     []string{"127.0.0.1:22"},
		Registry:  peers.NewRegistry(ssh.FingerprintSHA256(host.PublicKey())),
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PostDelay: 50 * time.Millisecond, RequestTimeout: 5 * time.Second,
	}, host, client
}

// start runs a node; it is closed at cleanup.
func (e *env) start(t testing.TB, token, name string, mod ...func(*Config)) *node {
	t.Helper()
	cfg, _, client := e.config(t, token, name)
	for _, m := range mod {
		m(&cfg)
	}
	n := &node{reg: cfg.Registry, host: cfg.Signer, client: client, fp: ssh.FingerprintSHA256(cfg.Signer.PublicKey()), token: token}
	n.started = time.Now()
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", name, err)
	}
	n.posted = time.Now()
	n.d = d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return n
}

func (n *node) has(fp string) bool {
	_, ok := n.reg.ByID(fp)
	return ok
}

// waitFor polls cond until it holds or fails the test after timeout (an
// upper bound against hangs, not a speed claim).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// skewed is a clock d ahead of the wall clock.
func skewed(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
func encodeB64(b []byte) string          { return base64.RawURLEncoding.EncodeToString(b) }

func advertDecode(text string) (string, error) {
	d, err := advert.Decode(text)
	if err != nil {
		return "", err
	}
	return d.Fingerprint, nil
}
