//go:build linux

package discord

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/discordfake"
)

func TestGatewayFaults(t *testing.T) {
	// history holds when each bot last read channel history over REST.
	var mu sync.Mutex
	history := map[string]time.Time{}
	e := newEnv(t, func(f *discordfake.Server) {
		f.OnRequest = func(r discordfake.Request) {
			if r.Method == "GET" && strings.HasSuffix(r.Path, "/messages") {
				mu.Lock()
				history[r.BotID] = time.Now()
				mu.Unlock()
			}
		}
	})
	// settled reports whether every bot read history after since, and
	// none for the last half second.
	settled := func(since time.Time, bots ...string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bots {
			at := history[b]
			if !at.After(since) || time.Since(at) < 500*time.Millisecond {
				return false
			}
		}
		return true
	}
	tokA, _ := e.bot(t)
	tokB, _ := e.bot(t)
	other, _ := e.bot(t)
	// Alice confirms a missing advert after a second instead of 15 s:
	// what is tested is that a second read does it.
	const confirm = time.Second
	a := e.start(t, tokA, "alice", func(c *Config) { c.confirmDelay = confirm })
	b := e.start(t, tokB, "bob")
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	fp := func(text string) string {
		d, err := decodeAdvert(text)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// A dropped connection: what is posted while it is down arrives.
	dropped := time.Now()
	e.fake.DropGateways()
	dave := e.craft(t, newSigner(t), "dave")
	daveMsg := e.post(t, other, dave)
	waitFor(t, 15*time.Second, "alice to see dave after a drop", func() bool { return a.has(fp(dave)) })
	waitFor(t, 15*time.Second, "both gateways back", func() bool { return e.fake.GatewayConns() == 2 })
	// Both must have finished the history read their reconnect started
	// (a resumed session may deliver dave before it): one still to come
	// when the outage begins would find erin in history, and the outage
	// would prove nothing.
	waitFor(t, 15*time.Second, "both ready and their history reads after the drop settled", func() bool {
		return a.d.ready.Load() && b.d.ready.Load() && settled(dropped, a.d.BotID(), b.d.BotID())
	})

	// A long outage with lost sessions: nothing is replayed, so history
	// must bring the new advert and the deletion.
	e.fake.SetGatewayDown(true)
	erin := e.craft(t, newSigner(t), "erin")
	e.post(t, other, erin)
	if !e.fake.Delete(e.channel, daveMsg) {
		t.Fatal("delete dave")
	}
	refused := e.fake.Refused()
	waitFor(t, 15*time.Second, "alice and bob to retry into the outage", func() bool { return e.fake.Refused()-refused >= 2 })
	if a.has(fp(erin)) {
		t.Fatal("alice saw erin while the gateway was down; the test proves nothing")
	}
	e.fake.SetGatewayDown(false)
	waitFor(t, 20*time.Second, "alice to see erin after the outage", func() bool { return a.has(fp(erin)) })
	// Absence from history is confirmed by a second read (missing.go).
	waitFor(t, confirm+10*time.Second, "alice to drop dave, deleted during the outage", func() bool { return !a.has(fp(dave)) })

	// op 7 (reconnect) and op 9 (invalid session) keep things flowing.
	e.fake.Reconnect()
	frank := e.craft(t, newSigner(t), "frank")
	e.post(t, other, frank)
	waitFor(t, 15*time.Second, "alice to see frank after op 7", func() bool { return a.has(fp(frank)) })
	e.fake.InvalidateSessions()
	gina := e.craft(t, newSigner(t), "gina")
	e.post(t, other, gina)
	waitFor(t, 15*time.Second, "alice to see gina after op 9", func() bool { return a.has(fp(gina)) })
	if !a.has(b.fp) || !b.has(a.fp) {
		t.Error("alice and bob lost each other")
	}
	if a.d.Err() != nil || b.d.Err() != nil {
		t.Errorf("discovery stopped: %v / %v", a.d.Err(), b.d.Err())
	}
}

func decodeAdvert(text string) (string, error) {
	d, err := advertDecode(text)
	if err != nil {
		return "", err
	}
	return d, nil
}

func TestFatalErrors(t *testing.T) {
	var identifies atomic.Int32
	var gatewayRevoked atomic.Value // bot ID whose gateway login fails with 4004
	gatewayRevoked.Store("")
	e := newEnv(t, func(f *discordfake.Server) {
		f.Identify = func(bot string, _ int) int {
			identifies.Add(1)
			if bot == gatewayRevoked.Load().(string) {
				return 4004
			}
			return 0
		}
	})
	good, _ := e.bot(t)
	noIntent, _ := e.bot(t, func(b *discordfake.Bot) { b.MessageContent = false })
	readOnly, _ := e.bot(t, func(b *discordfake.Bot) { b.NoPost = []string{e.channel} })
	lonely, _ := e.bot(t, func(b *discordfake.Bot) { b.Guilds = nil })
	g2 := e.fake.AddGuild("work")
	twoGuilds, _ := e.bot(t, func(b *discordfake.Bot) { b.Guilds = append(b.Guilds, g2) })
	gatewayOnly, gatewayOnlyID := e.bot(t)
	gatewayRevoked.Store(gatewayOnlyID)

	cases := []struct {
		name, token, channel string
		want                 error
		text                 []string
		guild                string
	}{
		{"bad token", "not-a-token", "", ErrBadToken, []string{"DSFTP_DISCORD_TOKEN"}, ""},
		{"intent", noIntent, "", ErrIntent, []string{"Message Content"}, ""},
		{"gateway 4004", gatewayOnly, "", ErrBadToken, []string{"Reset Token"}, ""},
		{"channel", good, "nope", ErrNoChannel, []string{"#dsftp", "#general", "--channel"}, ""},
		{"post refused", readOnly, "", ErrForbidden, []string{"Send Messages"}, ""},
		// Not Discord itself (--discord-api): no discord.com link.
		{"no guild", lonely, "", ErrNoGuild, []string{"invite the bot to a server on " + e.fake.URL()}, ""},
		{"guild not found", good, "", nil, []string{`not in server "nosuchguild", only in friends`, "--guild", "invite the bot to a server on " + e.fake.URL()}, "nosuchguild"},
		{"two guilds", twoGuilds, "", nil, []string{"--guild", "friends", "work"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, _ := e.config(t, c.token, "x")
			cfg.Channel, cfg.Guild = c.channel, c.guild
			before := identifies.Load()
			start := time.Now()
			d, err := Start(context.Background(), cfg)
			if err == nil {
				d.Close(context.Background())
				t.Fatal("Start succeeded")
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v: something retried", time.Since(start))
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
			for _, s := range c.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if c.want == ErrNoGuild || c.guild != "" {
				// The server in use is the fake, not Discord: its
				// invite links would be wrong, and "in no server"
				// must not precede the servers it is in.
				if strings.Contains(err.Error(), "discord.com") || (c.guild != "" && errors.Is(err, ErrNoGuild)) {
					t.Errorf("error %q points to Discord or contradicts itself", err)
				}
			}
			if n := identifies.Load() - before; n > 1 {
				t.Errorf("%d gateway identifies; want at most one, no retry loop", n)
			}
			t.Logf("%s: %v", c.name, err)
		})
	}

	// A token revoked while running: the reconnect fails with 4004 and
	// discovery stops with one clear error instead of retrying.
	n := e.start(t, good, "alice")
	e.fake.RevokeToken(good)
	before := identifies.Load()
	e.fake.InvalidateSessions()
	e.fake.DropGateways()
	select {
	case <-n.d.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("discovery kept going with a revoked token")
	}
	if !errors.Is(n.d.Err(), ErrBadToken) {
		t.Errorf("Err() = %v, want ErrBadToken", n.d.Err())
	}
	time.Sleep(1500 * time.Millisecond)
	if got := identifies.Load() - before; got > 2 {
		t.Errorf("%d identifies after revocation; want no retry loop", got)
	}
}

func TestRateLimited(t *testing.T) {
	var limited atomic.Int32
	e := newEnv(t, func(f *discordfake.Server) {
		f.RateLimit = func(r discordfake.Request) time.Duration {
			if r.Method == "POST" && limited.Add(1) <= 2 {
				return 300 * time.Millisecond
			}
			return 0
		}
	})
	tokA, _ := e.bot(t)
	tokB, _ := e.bot(t)
	a := e.start(t, tokA, "alice")
	b := e.start(t, tokB, "bob")
	waitFor(t, 10*time.Second, "alice to see bob", func() bool { return a.has(b.fp) })
	if limited.Load() < 3 {
		t.Fatalf("the fake answered 429 %d times; the test did not exercise it", limited.Load())
	}
}

// TestMissedHeartbeats: a connection that stops acknowledging heartbeats
// is replaced, without a reconnect storm, and adverts keep flowing.
func TestMissedHeartbeats(t *testing.T) {
	e := newEnv(t, func(f *discordfake.Server) { f.HeartbeatInterval = 100 * time.Millisecond })
	tokA, _ := e.bot(t)
	other, _ := e.bot(t)
	a := e.start(t, tokA, "alice")
	before := e.fake.Connects()
	e.fake.SuppressHeartbeatAcks(true)
	time.Sleep(3 * time.Second)
	e.fake.SuppressHeartbeatAcks(false)
	reconnects := e.fake.Connects() - before
	t.Logf("%d gateway connections in 3 s without heartbeat ACKs (100 ms interval)", reconnects)
	if reconnects < 1 {
		t.Error("alice never noticed the dead connection")
	}
	if reconnects > 6 {
		t.Errorf("%d reconnects in 3 s: a reconnect storm", reconnects)
	}
	text := e.craft(t, newSigner(t), "dave")
	e.post(t, other, text)
	fp, _ := advertDecode(text)
	waitFor(t, 15*time.Second, "alice to see dave after the heartbeat trouble", func() bool { return a.has(fp) })
}
