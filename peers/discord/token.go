package discord

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// TokenEnv is the environment variable that holds the bot token. The
// token is read from it or from a file, never from a flag, so it stays out
// of `ps`.
const TokenEnv = "DSFTP_DISCORD_TOKEN"

// DefaultTokenFile is $XDG_CONFIG_HOME/dsftp/discord-token (or the OS
// equivalent); "" when there is no such directory.
func DefaultTokenFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "dsftp", "discord-token")
}

// ReadToken reads the bot token from path, or with path "" from
// DefaultTokenFile. ok is false when no token is configured at all (the
// default file does not exist); a path given that cannot be read, or an
// empty file, is an error. A file other users can read is logged.
func ReadToken(path string, log *slog.Logger) (tok string, ok bool, err error) {
	explicit := path != ""
	if !explicit {
		path = DefaultTokenFile()
		if path == "" {
			return "", false, nil
		}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read Discord token: %w (write the bot token to it, or set %s)", err, TokenEnv)
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
