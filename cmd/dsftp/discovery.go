package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
)

// Environment variables for discovery. The token is read from the
// environment or a file, never from a flag, so it stays out of `ps`.
const (
	envDiscordToken = discord.TokenEnv
	envDiscordAPI   = "DSFTP_DISCORD_API"
)

// discoveryFlags are the Discord discovery flags, shared by every command
// that finds peers or lets itself be found (share, mount, shell, peers).
type discoveryFlags struct {
	tokenFile  string
	channel    string
	guild      string
	api        string
	name       string
	allowUsers []string
	noDiscord  bool
}

// register adds the discovery flags to fs. withName is false for
// commands that do not advertise (peers).
func (f *discoveryFlags) register(fs *pflag.FlagSet, withName bool) {
	fs.StringVar(&f.tokenFile, "token-file", "", "FILE holding the Discord bot token (default "+discord.DefaultTokenFile()+"; $"+envDiscordToken+" takes precedence)")
	fs.StringVar(&f.channel, "channel", discord.DefaultChannel, "Discord text channel NAME or ID where peers advertise")
	fs.StringVar(&f.guild, "guild", "", "Discord server NAME or ID (needed only when the bot is in several)")
	fs.StringVar(&f.api, "discord-api", "", "Discord API base URL (scheme and host; default https://discord.com or $"+envDiscordAPI+"), for Discord-compatible servers and tests")
	fs.StringSliceVar(&f.allowUsers, "allow-user", nil, "trust only adverts posted by this Discord user ID (repeatable)")
	if withName {
		fs.StringVar(&f.name, "name", "", "NAME other peers see for this share (default: your OS user name)")
		fs.BoolVar(&f.noDiscord, "no-discord", false, "do not use Discord even if a token is configured")
	}
}

// token returns the bot token and where it came from. ok is false when no
// token is configured at all (discovery off); an explicit --token-file that
// cannot be read is an error.
func (f *discoveryFlags) token(log *slog.Logger) (tok string, ok bool, err error) {
	if t := strings.TrimSpace(os.Getenv(envDiscordToken)); t != "" {
		return t, true, nil
	}
	return discord.ReadToken(f.tokenFile, log)
}

// validate checks the flags that can be checked without the network.
func (f *discoveryFlags) validate() error {
	for _, u := range f.allowUsers {
		if u == "" || strings.Trim(u, "0123456789") != "" {
			return usageError{fmt.Errorf("--allow-user %q: want a numeric Discord user ID (Discord: Settings → Advanced → Developer Mode, then right-click the user → Copy User ID)", u)}
		}
	}
	if f.name != "" && peers.SanitizeName(f.name) != f.name {
		return usageError{fmt.Errorf("--name %q: use a plain name without '/', control characters or leading/trailing spaces, at most %d bytes", f.name, peers.MaxNameLen)}
	}
	return nil
}

// config returns the discovery configuration without the advertising
// parts (Signer, ClientKeys, Addrs, Registry).
func (f *discoveryFlags) config(token string, log *slog.Logger) discord.Config {
	api := f.api
	if api == "" {
		api = os.Getenv(envDiscordAPI)
	}
	name := f.name
	if name == "" {
		name = instance.DefaultName()
	}
	return discord.Config{
		Token: token, APIBase: api, Guild: f.guild, Channel: f.channel,
		Name: name, User: "dsftp", AllowUsers: f.allowUsers, Logger: log,
	}
}

// prepare checks the flags and the token before anything starts. It
// returns the token, or "" when discovery is off (--no-discord, or no token
// configured at all).
func (f *discoveryFlags) prepare(log *slog.Logger) (string, error) {
	if err := f.validate(); err != nil {
		return "", err
	}
	if f.noDiscord {
		return "", nil
	}
	tok, ok, err := f.token(log)
	if err != nil {
		return "", err
	}
	if !ok {
		log.Debug("Discord discovery is off: no bot token (set " + envDiscordToken + " or write it to " + discord.DefaultTokenFile() + ")")
		return "", nil
	}
	return tok, nil
}
