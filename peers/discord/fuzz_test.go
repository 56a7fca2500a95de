package discord

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/dsftp/dsftp/peers"
)

// FuzzAnswers feeds arbitrary JSON, decoded as discordgo decodes REST
// answers and gateway events, to the checks and the receiver: whatever a
// server sends, nothing panics.
func FuzzAnswers(f *testing.F) {
	for _, s := range []string{
		`null`, `{}`, `[]`, `[null]`, `{"id":"1","username":"bot"}`, `[{"id":"2","name":"friends"}]`,
		`[{"id":"3","name":"dsftp","type":0}]`, `{"public_flags":"x"}`,
		`[{"id":"4","channel_id":"3","content":"dsftp/1 x.y","author":null}]`,
		`{"id":"5","channel_id":"3","content":"dsftp/1 eyJ9.AA","author":{"id":"6"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var u *discordgo.User
		if json.Unmarshal(b, &u) == nil {
			_ = checkUser("", u)
		}
		var gs []*discordgo.UserGuild
		if json.Unmarshal(b, &gs) == nil {
			_ = checkGuilds("", gs)
		}
		var cs []*discordgo.Channel
		if json.Unmarshal(b, &cs) == nil {
			_ = checkChannels("", cs)
		}
		r := newReceiver(target{channelID: "3", guildID: "2"}, Config{Registry: peers.NewRegistry("")}, slog.New(slog.NewTextHandler(io.Discard, nil)), "self")
		var ms []*discordgo.Message
		if json.Unmarshal(b, &ms) == nil && checkMessages("", ms) == nil {
			for _, m := range ms {
				r.message(m, time.Now())
			}
		}
		var m *discordgo.Message
		if json.Unmarshal(b, &m) == nil && checkPosted("", m) == nil {
			r.message(m, time.Now())
		}
		for _, ev := range []any{&discordgo.MessageCreate{}, &discordgo.MessageUpdate{}, &discordgo.MessageDelete{}} {
			if json.Unmarshal(b, ev) != nil {
				continue
			}
			switch e := ev.(type) {
			case *discordgo.MessageCreate:
				r.message(e.Message, time.Now())
			case *discordgo.MessageUpdate:
				r.message(e.Message, time.Now())
			case *discordgo.MessageDelete:
				if e.Message != nil {
					r.deleted(e.ID)
				}
			}
		}
	})
}
