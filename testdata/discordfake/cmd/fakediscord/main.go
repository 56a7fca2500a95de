// Command fakediscord runs the test-only fake Discord as its own process,
// for tests that start several dsftp processes against one channel.
//
//	fakediscord -listen 127.0.0.1:0 -guild friends -channel dsftp -bot TOKEN_A -bot TOKEN_B:nointent
//
// It prints one JSON line to stdout ({"url", "guild", "channels", "bots"})
// once it serves, then runs until SIGINT or SIGTERM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dsftp/dsftp/testdata/discordfake"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	guild := flag.String("guild", "dsftp-test", "name of the one guild")
	var channels, bots multi
	flag.Var(&channels, "channel", "text channel name (repeatable; default dsftp)")
	flag.Var(&bots, "bot", "bot token, optionally TOKEN:nointent (Message Content intent off) or TOKEN:nopost (repeatable)")
	flag.Parse()
	if len(channels) == 0 {
		channels = multi{"dsftp"}
	}
	f := discordfake.New()
	g := f.AddGuild(*guild)
	out := struct {
		URL      string            `json:"url"`
		Guild    string            `json:"guild"`
		Channels map[string]string `json:"channels"`
		Bots     map[string]string `json:"bots"`
	}{Guild: g, Channels: map[string]string{}, Bots: map[string]string{}}
	for _, c := range channels {
		out.Channels[c] = f.AddChannel(g, c)
	}
	for _, spec := range bots {
		token, opt, _ := strings.Cut(spec, ":")
		b := discordfake.Bot{Token: token, Name: "bot-" + token[:min(len(token), 6)], MessageContent: opt != "nointent", Guilds: []string{g}}
		if opt == "nopost" {
			for _, id := range out.Channels {
				b.NoPost = append(b.NoPost, id)
			}
		}
		out.Bots[token] = f.AddBot(b)
	}
	if err := f.Start(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "fakediscord:", err)
		os.Exit(1)
	}
	out.URL = f.URL()
	json.NewEncoder(os.Stdout).Encode(out)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	f.Close()
}
