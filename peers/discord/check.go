package discord

import (
	"cmp"
	"fmt"

	"github.com/bwmarrin/discordgo"
)

// A server can answer with JSON that decodes but is not what Discord
// sends: null for an object, null elements in a list, an object without
// its id. discordgo passes such values on as nil pointers and empty
// strings, so every decoded answer is checked here before use; what
// fails is the server's fault and is said so, never a panic.

// offSpec is the error for an answer that decoded but cannot be Discord's.
func offSpec(base, request, what string) error {
	return fmt.Errorf("%w: %s answered %s with %s, which Discord never sends (an off-spec server; check --discord-api)",
		ErrNotDiscord, apiName(base), request, what)
}

// apiName is the API in use, as the user knows it.
func apiName(base string) string { return cmp.Or(base, "https://discord.com") }

// checkUser checks the answer to GET /users/@me.
func checkUser(base string, u *discordgo.User) error {
	switch {
	case u == nil:
		return offSpec(base, "GET /users/@me", "null")
	case u.ID == "":
		return offSpec(base, "GET /users/@me", "a user without an id")
	}
	return nil
}

// checkGuilds checks the answer to GET /users/@me/guilds.
func checkGuilds(base string, gs []*discordgo.UserGuild) error {
	for _, g := range gs {
		if g == nil || g.ID == "" {
			return offSpec(base, "GET /users/@me/guilds", "a server without an id")
		}
	}
	return nil
}

// checkChannels checks the answer to GET /guilds/ID/channels.
func checkChannels(base string, cs []*discordgo.Channel) error {
	for _, c := range cs {
		if c == nil || c.ID == "" {
			return offSpec(base, "GET /guilds/…/channels", "a channel without an id")
		}
	}
	return nil
}

// checkMessages checks a page of channel history.
func checkMessages(base string, ms []*discordgo.Message) error {
	for _, m := range ms {
		if m == nil || m.ID == "" {
			return offSpec(base, "GET /channels/…/messages", "a message without an id")
		}
	}
	return nil
}

// checkPosted checks the answer to POST /channels/ID/messages.
func checkPosted(base string, m *discordgo.Message) error {
	if m == nil || m.ID == "" {
		return offSpec(base, "POST /channels/…/messages", "no message id")
	}
	return nil
}
