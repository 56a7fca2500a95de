//go:build linux

package discordfake

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/dsftp/dsftp/testdata/testenv"
)

// rewrite points discordgo at the fake, as dsftp's --discord-api does.
type rewrite struct{ base *url.URL }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.base.Scheme, r.base.Host
	return http.DefaultTransport.RoundTrip(req)
}

func dgSession(t *testing.T, f *Server, token string, intents discordgo.Intent) *discordgo.Session {
	t.Helper()
	s, err := discordgo.New("Bot " + token)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(f.URL())
	s.Client = &http.Client{Transport: rewrite{u}, Timeout: 10 * time.Second}
	s.ShouldReconnectOnError = false
	s.ShouldRetryOnRateLimit = false
	s.LogLevel = -1
	s.Identify.Intents = intents
	return s
}

func TestFakeSpeaksDiscordgo(t *testing.T) {
	f := New()
	f.HeartbeatInterval = 200 * time.Millisecond
	g := f.AddGuild("g")
	c := f.AddChannel(g, "dsftp")
	a := f.AddBot(Bot{Token: "A", Name: "a", MessageContent: true, Guilds: []string{g}})
	f.AddBot(Bot{Token: "B", Name: "b", MessageContent: false, Guilds: []string{g}})
	if err := f.Start(""); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sa := dgSession(t, f, "A", discordgo.IntentsGuilds|discordgo.IntentsGuildMessages|discordgo.IntentMessageContent)
	sb := dgSession(t, f, "B", discordgo.IntentsGuilds|discordgo.IntentsGuildMessages)

	me, err := sa.User("@me")
	if err != nil || me.ID != a {
		t.Fatalf("users/@me: %v %v", me, err)
	}
	chans, err := sa.GuildChannels(g)
	if err != nil || len(chans) != 1 || chans[0].Name != "dsftp" {
		t.Fatalf("channels: %v %v", chans, err)
	}

	// Gateway: A sees content, B (no intent) sees empty content.
	gotA, gotB := make(chan string, 300), make(chan string, 300)
	sa.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { gotA <- m.Content })
	sb.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) { gotB <- m.Content })
	if err := sa.Open(); err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	if err := sb.Open(); err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var ids []string
	for i := range 250 {
		m, err := sa.ChannelMessageSend(c, "m"+strings.Repeat("x", i%3)+string(rune('a'+i%26)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if got := <-gotA; got == "" {
		t.Error("A got empty content over the gateway")
	}
	if got := <-gotB; got != "" {
		t.Errorf("B without the intent got content %q", got)
	}
	// B requesting the intent it lacks is closed with 4014.
	sb2 := dgSession(t, f, "B", discordgo.IntentMessageContent)
	if err := sb2.Open(); err == nil || !strings.Contains(err.Error(), "4014") {
		t.Errorf("open without the intent: %v, want close 4014", err)
	}
	bad := dgSession(t, f, "nope", 0)
	if err := bad.Open(); err == nil {
		t.Error("open with a bad token worked")
	}

	// History pages newest first.
	page, err := sa.ChannelMessages(c, 100, "", "", "")
	if err != nil || len(page) != 100 || page[0].ID != ids[249] || page[99].ID != ids[150] {
		t.Fatalf("first page: %d %v", len(page), err)
	}
	page, _ = sa.ChannelMessages(c, 100, page[99].ID, "", "")
	if len(page) != 100 || page[0].ID != ids[149] {
		t.Fatalf("second page wrong")
	}
	page, _ = sa.ChannelMessages(c, 10, "", ids[5], "")
	if len(page) != 10 || page[0].ID != ids[15] || page[9].ID != ids[6] {
		t.Fatalf("after page wrong")
	}
	if page, _ := sb.ChannelMessages(c, 1, "", "", ""); page[0].Content != "" {
		t.Error("B reads content over REST without the intent")
	}

	// Only the author may delete; overlong messages are refused.
	if err := sb.ChannelMessageDelete(c, ids[0]); err == nil {
		t.Error("B deleted A's message")
	}
	if err := sa.ChannelMessageDelete(c, ids[0]); err != nil {
		t.Errorf("author delete: %v", err)
	}
	if _, err := sa.ChannelMessageSend(c, strings.Repeat("x", 2001)); err == nil {
		t.Error("2001-character message accepted")
	}
	if w := f.Writes()[a]; w != 251 {
		t.Errorf("writes %d, want 251", w)
	}

	// 429 with retry_after in the body.
	f.RateLimit = func(r Request) time.Duration { return 1500 * time.Millisecond }
	_, err = sa.ChannelMessageSend(c, "limited", discordgo.WithContext(context.Background()))
	var rl *discordgo.RateLimitError
	if !errorsAs(err, &rl) || rl.RetryAfter != 1500*time.Millisecond {
		t.Errorf("rate limit: %v", err)
	}
}

func errorsAs(err error, target **discordgo.RateLimitError) bool {
	e, ok := err.(*discordgo.RateLimitError)
	if ok {
		*target = e
	}
	return ok
}

// TestStandalone runs the fakediscord command and talks to it. The binary
// is built first and run directly (not with "go run", whose child would
// outlive a killed parent) so cleanup ends it by PID.
func TestStandalone(t *testing.T) {
	bin := testenv.BuildProgram(t, "./testdata/discordfake/cmd/fakediscord")
	p := testenv.Start(t, nil, bin, "-bot", "T1", "-bot", "T2:nointent")
	var info struct {
		URL      string
		Guild    string
		Channels map[string]string
		Bots     map[string]string
	}
	testenv.WaitFor(t, 90*time.Second, "fakediscord's start-up line", func() bool {
		for _, l := range strings.Split(p.Output.String(), "\n") {
			if json.Unmarshal([]byte(l), &info) == nil && info.URL != "" {
				return true
			}
		}
		return false
	})
	s, _ := discordgo.New("Bot T1")
	u, _ := url.Parse(info.URL)
	s.Client = &http.Client{Transport: rewrite{u}, Timeout: 10 * time.Second}
	m, err := s.ChannelMessageSend(info.Channels["dsftp"], "hi")
	if err != nil || m.Author.ID != info.Bots["T1"] {
		t.Fatalf("post to standalone fake: %v %+v", err, m)
	}
}
