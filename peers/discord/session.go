package discord

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Errors that stop discovery. Each one says what to do; none is retried.
var (
	ErrBadToken    = errors.New("Discord rejected the bot token: check DSFTP_DISCORD_TOKEN or --token-file (copy the token again from https://discord.com/developers/applications → your app → Bot → Reset Token)")
	ErrIntent      = errors.New("the bot lacks the Message Content intent: enable it at https://discord.com/developers/applications → your app → Bot → Privileged Gateway Intents → Message Content Intent, then start dsftp again")
	ErrNoGuild     = errors.New("the bot is in no Discord server")
	ErrNoChannel   = errors.New("channel not found")
	ErrForbidden   = errors.New("the bot lacks a permission in the channel: it needs View Channel, Send Messages and Read Message History")
	ErrUnreachable = errors.New("cannot reach the Discord API")
	ErrNotDiscord  = errors.New("the server is not a Discord API")
)

// invitePermissions is View Channel + Send Messages + Read Message History.
const invitePermissions = 1<<10 | 1<<11 | 1<<16

// InviteURL is the link that adds a bot (by its application ID, which for
// bots is the bot's user ID) to a server with the permissions dsftp needs.
func InviteURL(botID string) string {
	return fmt.Sprintf("https://discord.com/oauth2/authorize?client_id=%s&scope=bot&permissions=%d", url.QueryEscape(botID), invitePermissions)
}

// invite says how to add the bot to a server: Discord's invite link, or,
// for another server (--discord-api), whose links dsftp does not know,
// only that it must be done there.
func invite(base, botID string) string {
	if base == "" {
		return "invite it with " + InviteURL(botID)
	}
	return "invite the bot to a server on " + base
}

// rewriteTransport sends every request to base's scheme and host (with
// --discord-api), keeping the path discordgo built. It is per session, so
// discordgo's package-level endpoint variables stay untouched. Its errors
// name the base actually used and what happened: the network failed
// (ErrUnreachable), or what answered is not a Discord API (ErrNotDiscord:
// a web page, say, where discordgo would only fail to decode JSON).
// maxAnswer bounds one REST answer (100 messages are about 0.5 MiB).
const maxAnswer = 16 << 20

type rewriteTransport struct {
	base    *url.URL
	rewrite bool
	rt      http.RoundTripper
}

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.rewrite {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
		if p := strings.TrimSuffix(t.base.Path, "/"); p != "" {
			r.URL.Path = p + r.URL.Path
		}
	}
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w (check the network, or --discord-api)", ErrUnreachable, t.base, err)
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusNoContent && resp.ContentLength != 0 && !strings.Contains(ct, "json") {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s answered %s %s with %q, not JSON; check --discord-api", ErrNotDiscord, t.base, r.Method, resp.Status, cmp.Or(ct, "no content type"))
	}
	if resp.ContentLength == 0 || resp.StatusCode == http.StatusNoContent {
		return resp, nil
	}
	// discordgo would fail to decode a broken body without saying who
	// sent it; Discord's answers are far below the bound.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%w at %s: read the answer: %w", ErrUnreachable, t.base, err)
	}
	if len(body) > maxAnswer || !json.Valid(body) {
		return nil, fmt.Errorf("%w: %s answered %s %s with a body that is not valid JSON (%d bytes); check --discord-api", ErrNotDiscord, t.base, r.Method, resp.Status, len(body))
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// newSession builds a discordgo session that never retries on its own:
// no automatic reconnect (we reconnect, with backoff, and then re-read
// history), no endless 429 retries (calls are bounded by contexts), and
// event handlers run in order on the gateway reader.
func newSession(token, apiBase string) (*discordgo.Session, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("no Discord bot token: set DSFTP_DISCORD_TOKEN or write it to the --token-file")
	}
	if !strings.HasPrefix(token, "Bot ") {
		token = "Bot " + token
	}
	s, err := discordgo.New(token)
	if err != nil {
		return nil, fmt.Errorf("create Discord session: %w", err)
	}
	rt := rewriteTransport{base: &url.URL{Scheme: "https", Host: "discord.com"}, rt: http.DefaultTransport}
	if apiBase != "" {
		u, err := url.Parse(apiBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--discord-api %q: want a URL like https://discord.com", apiBase)
		}
		rt.base, rt.rewrite = u, true
	}
	s.Client = &http.Client{Timeout: 30 * time.Second, Transport: rt}
	s.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 15 * time.Second}
	s.ShouldReconnectOnError = false
	s.ShouldReconnectVoiceOnSessionError = false
	s.ShouldRetryOnRateLimit = false
	s.StateEnabled = false
	s.SyncEvents = true
	// discordgo logs through the standard log package; everything that
	// matters reaches us as an error or event and is logged with slog.
	s.LogLevel = -1
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentMessageContent
	return s, nil
}

// restCode returns the HTTP status and Discord error code of a REST error.
func restCode(err error) (status, code int) {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		status = re.Response.StatusCode
		if re.Message != nil {
			code = re.Message.Code
		}
	}
	return status, code
}

// closeCode returns the gateway close code in err, or 0.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// explainGateway turns fatal gateway close codes into their error.
func explainGateway(err error) error {
	switch closeCode(err) {
	case 4004:
		return ErrBadToken
	case 4014:
		return ErrIntent
	}
	return nil
}

// call runs one REST request bounded by timeout, and waits out 429s a few
// times (bounded by ctx) instead of letting discordgo retry forever.
func call(ctx context.Context, timeout time.Duration, f func(opts ...discordgo.RequestOption) error) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := f(discordgo.WithContext(cctx), discordgo.WithRetryOnRatelimit(false), discordgo.WithRestRetries(1))
		cancel()
		var rl *discordgo.RateLimitError
		if !errors.As(err, &rl) {
			return explainREST(err)
		}
		if attempt >= 4 {
			return err
		}
		wait := min(max(rl.RetryAfter, 50*time.Millisecond), time.Minute)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// explainREST drops the URL discordgo built (which names discord.com even
// when --discord-api points elsewhere; the transport's errors name the
// base used) and says what a JSON decoding error means.
func explainREST(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && (errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNotDiscord)) {
		return ue.Err
	}
	if errors.Is(err, discordgo.ErrJSONUnmarshal) {
		if m := fieldTypeRE.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%w: its answer is off-spec: field %s of a %s is a JSON %s, where Discord sends %s; check --discord-api", ErrNotDiscord, m[3], m[2], m[1], strings.TrimPrefix(m[4], "discordgo."))
		}
		return fmt.Errorf("%w: its answer is not the JSON Discord sends (%w); check --discord-api", ErrNotDiscord, err)
	}
	return err
}

// fieldTypeRE picks the JSON type, the struct, the field and the Go type
// out of encoding/json's type error, which discordgo passes on as text.
var fieldTypeRE = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field (\w+)\.(\S+) of type (\S+)`)

// namedAPI makes sure an error about the API itself names the API in
// use; other errors get what was being done.
func namedAPI(base, doing string, err error) error {
	if errors.Is(err, ErrNotDiscord) || errors.Is(err, ErrUnreachable) {
		if strings.Contains(err.Error(), apiName(base)) {
			return err
		}
		return fmt.Errorf("%s: %w", apiName(base), err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// target is the resolved place adverts go.
type target struct {
	base           string // --discord-api, "" for Discord itself
	botID, botName string
	guildID        string
	channelID      string
	channelName    string
}

// resolve checks the token and finds the guild and channel.
func resolve(ctx context.Context, s *discordgo.Session, timeout time.Duration, base, guild, channel string) (target, error) {
	t := target{base: base}
	var me *discordgo.User
	err := call(ctx, timeout, func(o ...discordgo.RequestOption) (err error) { me, err = s.User("@me", o...); return })
	if err != nil {
		if status, _ := restCode(err); status == http.StatusUnauthorized {
			return t, ErrBadToken
		}
		return t, namedAPI(base, "check bot token", err)
	}
	if err := checkUser(base, me); err != nil {
		return t, err
	}
	t.botID, t.botName = me.ID, me.Username
	var guilds []*discordgo.UserGuild
	err = call(ctx, timeout, func(o ...discordgo.RequestOption) (err error) {
		guilds, err = s.UserGuilds(200, "", "", false, o...)
		return
	})
	if err != nil {
		return t, namedAPI(base, "list the bot's servers", err)
	}
	if err := checkGuilds(base, guilds); err != nil {
		return t, err
	}
	var names []string
	for _, g := range guilds {
		names = append(names, g.Name)
		if guild != "" && (g.ID == guild || strings.EqualFold(g.Name, guild)) {
			t.guildID = g.ID
		}
	}
	slices.Sort(names)
	switch {
	case len(guilds) == 0:
		return t, fmt.Errorf("%w: %s", ErrNoGuild, invite(base, t.botID))
	case guild != "" && t.guildID == "":
		return t, fmt.Errorf("the bot is not in server %q, only in %s: choose one with --guild, or %s", guild, strings.Join(names, ", "), invite(base, t.botID))
	case guild == "" && len(guilds) > 1:
		return t, fmt.Errorf("the bot is in %d servers (%s): choose one with --guild", len(guilds), strings.Join(names, ", "))
	case guild == "":
		t.guildID = guilds[0].ID
	}
	var chans []*discordgo.Channel
	err = call(ctx, timeout, func(o ...discordgo.RequestOption) (err error) { chans, err = s.GuildChannels(t.guildID, o...); return })
	if err != nil {
		return t, namedAPI(base, "list channels", err)
	}
	if err := checkChannels(base, chans); err != nil {
		return t, err
	}
	want := strings.TrimPrefix(channel, "#")
	var visible []string
	for _, c := range chans {
		if c.Type != discordgo.ChannelTypeGuildText {
			continue
		}
		visible = append(visible, "#"+c.Name)
		if c.ID == want || strings.EqualFold(c.Name, want) {
			t.channelID, t.channelName = c.ID, c.Name
		}
	}
	if t.channelID == "" {
		slices.Sort(visible)
		seen := "none"
		if len(visible) > 0 {
			seen = strings.Join(visible, " ")
		}
		return t, fmt.Errorf("%w: no text channel %q that the bot can see; it sees: %s. Create #%s or pass --channel", ErrNoChannel, channel, seen, want)
	}
	return t, nil
}
