package main

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/share"
)

func init() {
	subcommands = append(subcommands, newShareCmd)
}

// shareFlags are the flags of the SFTP server, shared by every command
// that shares a directory (share, mount, shell).
type shareFlags struct {
	listen         string
	hostKey        string
	authorizedKeys string
	password       bool
	maxConns       int
	maxHandles     int
	maxAuthTries   int
	loginGrace     time.Duration
	shareHidden    bool
	flags          *pflag.FlagSet // to tell a --listen given from its default
	// Limits against attack (share/limits).
	maxConnsPerKey       int
	maxConnsPerSource    int
	maxStartups          share.Startups
	maxStartupsPerSource int
	maxRequests          int
	versionGrace         time.Duration
	idleTimeout          time.Duration
	penaltyMax           time.Duration
}

// register adds the share flags to fs.
func (f *shareFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.listen, "listen", share.DefaultListen, "address to serve SFTP on (\":0\" picks a free port)")
	fs.StringVar(&f.hostKey, "host-key", "", "OpenSSH private key FILE to use as the host key, created (ed25519, 0600) if missing (default $XDG_CONFIG_HOME/dsftp/host_key, i.e. ~/.config/dsftp/host_key)")
	fs.StringVar(&f.authorizedKeys, "authorized-keys", "", "OpenSSH authorized_keys FILE of client keys allowed to log in")
	fs.BoolVar(&f.password, "password", false, "also allow logins with a random per-run password, shown on this terminal only (for FileZilla/WinSCP)")
	fs.IntVar(&f.maxConns, "max-conns", share.DefaultMaxConns, "maximum number of concurrent logged-in connections")
	fs.IntVar(&f.maxHandles, "max-handles", share.DefaultMaxHandlesPerConn, "maximum number of open files and directories per connection")
	fs.IntVar(&f.maxAuthTries, "max-auth-tries", share.DefaultMaxAuthTries, "failed login attempts after which a connection is closed")
	fs.DurationVar(&f.loginGrace, "login-grace", share.DefaultLoginGrace, "time a connection has to log in")
	fs.BoolVar(&f.shareHidden, "share-hidden", false, "also share hidden files and folders (names starting with \".\"); private keys stay unshared")
	f.flags = fs
	fs.IntVar(&f.maxConnsPerKey, "max-conns-per-key", share.DefaultMaxConnsPerKey, "maximum logged-in connections with one client key")
	fs.IntVar(&f.maxConnsPerSource, "max-conns-per-source", share.DefaultMaxConnsPerSource, "maximum logged-in connections from one IPv4 address or IPv6 /64")
	f.maxStartups = share.DefaultStartups
	fs.Var(&f.maxStartups, "max-startups", "connections logging in at once, as start:rate:full: from start on, new ones are dropped with rate% probability, rising to all at full")
	fs.IntVar(&f.maxStartupsPerSource, "max-startups-per-source", share.DefaultMaxStartupsPerSource, "maximum connections logging in at once from one address")
	fs.IntVar(&f.maxRequests, "max-requests", share.DefaultMaxRequestsPerConn, "maximum SFTP requests in flight per connection (bounds memory per connection)")
	fs.DurationVar(&f.versionGrace, "version-grace", share.DefaultVersionGrace, "time a new connection has to send its SSH version line")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", share.DefaultIdleTimeout, "close logged-in connections with nothing open and no request for this long (0: never)")
	fs.DurationVar(&f.penaltyMax, "penalty-max", share.DefaultPenaltyMax, "longest an address that fails or stalls logins is refused (0: no penalties)")
}

// options turns the flags into share.Options for dir. Without --listen,
// the share falls back to another port when the default one is taken. df
// names the Discord token file, which is never served (nor is the host
// key, which the instance defaults to a lasting one).
func (f *shareFlags) options(dir string, df *discoveryFlags) share.Options {
	listen := f.listen
	if f.flags != nil && !f.flags.Changed("listen") {
		listen = ""
	}
	secrets := slices.DeleteFunc([]string{df.tokenFile, discord.DefaultTokenFile()}, func(p string) bool { return p == "" })
	return share.Options{
		MaxConnsPerKey:       f.maxConnsPerKey,
		MaxConnsPerSource:    f.maxConnsPerSource,
		MaxStartups:          f.maxStartups,
		MaxStartupsPerSource: f.maxStartupsPerSource,
		MaxRequestsPerConn:   f.maxRequests,
		VersionGrace:         f.versionGrace,
		IdleTimeout:          offIfZero(f.idleTimeout),
		PenaltyMax:           offIfZero(f.penaltyMax),
		Dir:                  dir,
		Listen:               listen,
		ShareHidden:          f.shareHidden,
		SecretFiles:          secrets,
		HostKeyFile:          f.hostKey,
		AuthorizedKeysFile:   f.authorizedKeys,
		Password:             f.password,
		MaxConns:             f.maxConns,
		MaxHandlesPerConn:    f.maxHandles,
		MaxAuthTries:         f.maxAuthTries,
		LoginGrace:           f.loginGrace,
	}
}

// offIfZero maps a flag's 0 ("never", "off", "disables") to the negative
// that share.Options and fs.Options take for it.
func offIfZero(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func newShareCmd(g *globals) *cobra.Command {
	var f shareFlags
	var df discoveryFlags
	var lf lanFlags
	var rf upnpFlags
	cmd := &cobra.Command{
		Use:   "share [DIR]",
		Short: "Share DIR (default: the working directory) read-only over SFTP",
		Long: `Serve DIR (default: the working directory) read-only over SSH/SFTP until
interrupted. Any SFTP client works: OpenSSH sftp, sshfs, FileZilla, WinSCP.

Clients see DIR as "/" and cannot leave it (not with "..", absolute paths or
symlinks pointing outside). Every write is refused. Hidden files, files
holding private keys, what DIR/.dsftpignore lists and dsftp mounts are never
served. Without DIR, the working directory is shared unless it is the home
folder (or /, or above it). Logins use public keys
(--authorized-keys); --password adds a random per-run password for clients
without keys. The host key lasts across runs (~/.config/dsftp/host_key
unless --host-key names another file).`,
		Example: `  dsftp share ~/photos --authorized-keys ~/.ssh/authorized_keys
  dsftp share --listen :0 --password
  sftp -P 2200 dsftp@192.168.1.5`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if err := instance.CheckShareDir(dir, len(args) == 1, "dsftp share", false, cmd.ErrOrStderr()); err != nil {
				return err
			}
			return runShare(cmd, dir, &f, &df, &lf, &rf)
		},
	}
	f.register(cmd.Flags())
	df.register(cmd.Flags(), true)
	lf.register(cmd.Flags())
	rf.register(cmd.Flags())
	return cmd
}

// runShare serves dir until interrupted; with discovery, it advertises the
// share and lets the live peers' client keys in.
func runShare(cmd *cobra.Command, dir string, f *shareFlags, df *discoveryFlags, lf *lanFlags, rf *upnpFlags) error {
	// Bad --advertise/--upnp-lease values are usage errors.
	rc, err := rf.check()
	if err != nil {
		return err
	}
	log := slog.Default()
	cfg := instance.Config{Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Logger: log, Reach: rc}
	if err := discoveryConfig(&cfg, df, lf, log); err != nil {
		return err
	}
	opts := f.options(dir, df)
	cfg.Share = &opts
	in, err := instance.Start(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	if err := in.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "dsftp share stopped in %.1f s\n", in.StopTime().Seconds())
	return nil
}
