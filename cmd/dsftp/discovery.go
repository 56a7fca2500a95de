package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

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

// maxAdvertAddrs keeps adverts short: the best addresses are enough.
const maxAdvertAddrs = 8

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

// startDiscovery starts Discord discovery advertising me, feeding reg
// (both from prepare), and returns once the first advert is posted.
func startDiscovery(ctx context.Context, f *discoveryFlags, tok string, me self, reg *peers.Registry, log *slog.Logger) (*discord.Discovery, error) {
	cfg := f.config(tok, log)
	cfg.Signer, cfg.ClientKeys, cfg.Registry = me.signer, me.clientKeys, reg
	cfg.Addrs, cfg.ClientOnly = me.addrs(), me.clientOnly()
	d, err := discord.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	channel := "#" + strings.TrimPrefix(f.channel, "#")
	if me.clientOnly() {
		log.Info("advertising our client key in Discord (sharing nothing)", "channel", channel, "name", cfg.Name)
	} else {
		log.Info("advertising in Discord", "channel", channel, "name", cfg.Name, "addrs", cfg.Addrs)
	}
	return d, nil
}

// attachDiscovery advertises me (a listening share, or a client-only
// advert) when tok is set. It returns the running discovery (nil when tok
// is "", e.g. for UPnP to call SetAddrs with the external address) and a
// function that, after the command's work ends, waits for the advert to
// be deleted and returns the fatal discovery error, if one ended the
// command through cancel.
func attachDiscovery(ctx context.Context, cancel context.CancelFunc, df *discoveryFlags, tok string, reg *peers.Registry,
	me self, log *slog.Logger) (d *discord.Discovery, wait func() error, err error) {
	if tok == "" {
		return nil, func() error { return nil }, nil
	}
	d, err = startDiscovery(ctx, df, tok, me, reg, log)
	if err != nil {
		return nil, nil, err
	}
	return d, superviseDiscovery(ctx, cancel, d, log), nil
}

// superviseDiscovery ties d to the command's lifetime: when ctx ends the
// advert is deleted at once, so peers drop us while the share is still
// winding down; when discovery stops on a fatal error, cancel ends the
// command. wait returns that fatal error, after the advert is gone.
func superviseDiscovery(ctx context.Context, cancel context.CancelFunc, d *discord.Discovery, log *slog.Logger) (wait func() error) {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-d.Done():
			cancel()
		}
		stopDiscovery(d, log)
	}()
	return func() error {
		<-stopped
		if err := d.Err(); err != nil {
			return fmt.Errorf("discord: %w", err)
		}
		return nil
	}
}

// stopDiscovery deletes the advert, bounded so exit never hangs.
func stopDiscovery(d *discord.Discovery, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		log.Warn("could not delete the Discord advert; it expires by itself", "err", err)
	}
}

// addrStrings formats a share's addresses for an advert.
func addrStrings(addrs []netip.AddrPort) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}
