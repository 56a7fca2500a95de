//go:build linux

package discord

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStartNotDiscord: a --discord-api that answers, but not as Discord
// (a web page; JSON of the wrong shape), and one that does not answer
// at all: each error says which, names the base actually used and never
// discord.com. (Before: "cannot reach the Discord API" for a JSON
// decoding error, with a discord.com URL.)
func TestStartNotDiscord(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bot(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>hello</html>"))
	}))
	defer page.Close()
	badJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id": [1, 2`))
	}))
	defer badJSON.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, c := range []struct {
		name, base string
		want       error
		text       []string
	}{
		{"web page", page.URL, ErrNotDiscord, []string{page.URL, "200 OK", "text/html", "not JSON", "--discord-api"}},
		{"bad JSON", badJSON.URL, ErrNotDiscord, []string{badJSON.URL, "not valid JSON", "--discord-api"}},
		{"closed port", closed, ErrUnreachable, []string{"cannot reach the Discord API at " + closed, "connection refused"}},
	} {
		cfg, _, _ := e.config(t, token, "x")
		cfg.APIBase = c.base
		d, err := Start(context.Background(), cfg)
		if err == nil {
			d.Close(context.Background())
			t.Fatalf("%s: Start succeeded", c.name)
		}
		if !errors.Is(err, c.want) || errors.Is(err, ErrUnreachable) != (c.want == ErrUnreachable) {
			t.Errorf("%s: %v; want only %v", c.name, err, c.want)
		}
		for _, s := range append(c.text, "!discord.com") {
			if neg, ok := strings.CutPrefix(s, "!"); ok {
				if strings.Contains(err.Error(), neg) {
					t.Errorf("%s: %q names %s", c.name, err, neg)
				}
			} else if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q lacks %q", c.name, err, s)
			}
		}
		t.Logf("%s: %v", c.name, err)
	}
}
