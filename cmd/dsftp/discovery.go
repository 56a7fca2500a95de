package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
)

// Environment variables for discovery. The token is read from the
// environment or a file, never from a flag, so it stays out of `ps`.
const (
	envDiscordToken = "DSFTP_DISCORD_TOKEN"
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

// defaultTokenFile is $XDG_CONFIG_HOME/dsftp/discord-token (or the OS
// equivalent).
func defaultTokenFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "dsftp", "discord-token")
}

// defaultName is the OS user name.
func defaultName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "peer"
}

// register adds the discovery flags to fs. withName is false for
// commands that do not advertise (peers).
func (f *discoveryFlags) register(fs *pflag.FlagSet, withName bool) {
	fs.StringVar(&f.tokenFile, "token-file", "", "FILE holding the Discord bot token (default "+defaultTokenFile()+"; $"+envDiscordToken+" takes precedence)")
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
	path, explicit := f.tokenFile, f.tokenFile != ""
	if !explicit {
		path = defaultTokenFile()
		if path == "" {
			return "", false, nil
		}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read Discord token: %w (write the bot token to it, or set %s)", err, envDiscordToken)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the Discord token file is readable by other users; run: chmod 600 "+path, "mode", fi.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("read Discord token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", false, fmt.Errorf("Discord token file %s is empty: write the bot token to it", path)
	}
	return t, true, nil
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
		name = defaultName()
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
		log.Debug("Discord discovery is off: no bot token (set " + envDiscordToken + " or write it to " + defaultTokenFile() + ")")
		return "", nil
	}
	return tok, nil
}
