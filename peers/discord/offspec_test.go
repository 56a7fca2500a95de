//go:build linux

package discord

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/discordfake"
)

// TestOffSpecAnswers: a server whose answers decode as JSON but are not
// what Discord sends (null for an object, null in a list, objects
// without their id) makes Start fail with one error that names the
// server and the request, never a panic.
func TestOffSpecAnswers(t *testing.T) {
	for _, c := range []struct {
		name, method, path, body string
		request                  string
	}{
		{"user null", "GET", "/users/@me", "null", "GET /users/@me"},
		{"user without id", "GET", "/users/@me", `{"username":"x"}`, "GET /users/@me"},
		{"user of the wrong type", "GET", "/users/@me", `{"id":"1","public_flags":"x"}`, "public_flags"},
		{"guild null", "GET", "/users/@me/guilds", "[null]", "GET /users/@me/guilds"},
		{"guild without id", "GET", "/users/@me/guilds", `[{"name":"friends"}]`, "GET /users/@me/guilds"},
		{"channel null", "GET", "/guilds/*/channels", "[null]", "GET /guilds/…/channels"},
		{"channel without id", "GET", "/guilds/*/channels", `[{"name":"dsftp","type":0}]`, "GET /guilds/…/channels"},
		{"history message null", "GET", "/channels/*/messages", "[null]", "GET /channels/…/messages"},
		{"history message without id", "GET", "/channels/*/messages", `[{"content":"hi"}]`, "GET /channels/…/messages"},
		{"posted message null", "POST", "/channels/*/messages", "null", "POST /channels/…/messages"},
		{"posted message without id", "POST", "/channels/*/messages", "{}", "POST /channels/…/messages"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(f *discordfake.Server) {
				f.Answer = func(r discordfake.Request) (int, string, bool) {
					return 200, c.body, r.Method == c.method && matchPath(c.path, r.Path)
				}
			})
			token, _ := e.bot(t)
			cfg, _, _ := e.config(t, token, "alice")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d, err := Start(ctx, cfg)
			if err == nil {
				d.Close(context.Background())
				t.Fatal("Start succeeded against an off-spec server")
			}
			if !errors.Is(err, ErrNotDiscord) {
				t.Errorf("%v: want ErrNotDiscord", err)
			}
			for _, want := range []string{e.fake.URL(), c.request} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "discord.com") {
				t.Errorf("%q names discord.com, not the server in use", err)
			}
		})
	}
}

// matchPath matches an API path against a pattern whose "*" stands for
// one segment.
func matchPath(pattern, path string) bool {
	p, s := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(p) != len(s) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != s[i] {
			return false
		}
	}
	return true
}

// TestOffSpecEvents: gateway events with null or partial payloads are
// ignored; discovery goes on and still sees a real advert afterwards.
func TestOffSpecEvents(t *testing.T) {
	e := newEnv(t)
	tokA, _ := e.bot(t)
	tokB, _ := e.bot(t)
	a := e.start(t, tokA, "alice")
	for _, ev := range []struct {
		typ string
		d   map[string]any
	}{
		{"MESSAGE_CREATE", nil},
		{"MESSAGE_CREATE", map[string]any{}},
		{"MESSAGE_CREATE", map[string]any{"channel_id": e.channel, "content": "dsftp/1 x", "author": nil}},
		{"MESSAGE_UPDATE", nil},
		{"MESSAGE_UPDATE", map[string]any{"channel_id": e.channel, "author": nil, "content": nil}},
		{"MESSAGE_DELETE", nil},
		{"MESSAGE_DELETE", map[string]any{"channel_id": e.channel}},
		{"READY", nil},
		{"RESUMED", nil},
	} {
		e.fake.Dispatch(e.guild, ev.typ, ev.d)
	}
	b := e.start(t, tokB, "bob")
	waitFor(t, 15*time.Second, "alice to see bob after the odd events", func() bool { return a.has(b.fp) })
}
