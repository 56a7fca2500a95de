package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/addrs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	// limits against attack (share/gate.go, share/flow.go)
	maxConnsPerKey       int
	maxConnsPerSource    int
	maxStartups          startupsFlag
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
	f.maxStartups = startupsFlag(share.DefaultStartups)
	fs.Var(&f.maxStartups, "max-startups", "connections logging in at once, as start:rate:full: from start on, new ones are dropped with rate% probability, rising to all at full")
	fs.IntVar(&f.maxStartupsPerSource, "max-startups-per-source", share.DefaultMaxStartupsPerSource, "maximum connections logging in at once from one address")
	fs.IntVar(&f.maxRequests, "max-requests", share.DefaultMaxRequestsPerConn, "maximum SFTP requests in flight per connection (bounds memory per connection)")
	fs.DurationVar(&f.versionGrace, "version-grace", share.DefaultVersionGrace, "time a new connection has to send its SSH version line")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", share.DefaultIdleTimeout, "close logged-in connections with nothing open and no request for this long (0: never)")
	fs.DurationVar(&f.penaltyMax, "penalty-max", share.DefaultPenaltyMax, "longest an address that fails or stalls logins is refused (0: no penalties)")
}

// options turns the flags into share.Options for dir. Without --listen,
// the share falls back to another port when the default one is taken.
// mountpoint is this process's own mount, never to be served; df names
// the Discord token file, which is never served either.
func (f *shareFlags) options(dir, mountpoint string, df *discoveryFlags) share.Options {
	listen := f.listen
	if f.flags != nil && !f.flags.Changed("listen") {
		listen = ""
	}
	// Without --host-key the key lasts in the configuration directory
	// (defaultHostKeyFile); it is never served either.
	hostKey := f.hostKey
	if hostKey == "" {
		hostKey = defaultHostKeyFile(slog.Default())
	}
	var secrets []string
	for _, p := range []string{hostKey, df.tokenFile, defaultTokenFile()} {
		if p != "" {
			secrets = append(secrets, p)
		}
	}
	return share.Options{
		Dir:                  dir,
		Listen:               listen,
		ShareHidden:          f.shareHidden,
		SecretFiles:          secrets,
		ExcludeMounts:        excludeMountsFunc(mountpoint),
		HostKeyFile:          hostKey,
		AuthorizedKeysFile:   f.authorizedKeys,
		Password:             f.password,
		MaxConns:             f.maxConns,
		MaxHandlesPerConn:    f.maxHandles,
		MaxAuthTries:         f.maxAuthTries,
		LoginGrace:           f.loginGrace,
		MaxConnsPerKey:       f.maxConnsPerKey,
		MaxConnsPerSource:    f.maxConnsPerSource,
		MaxStartups:          share.Startups(f.maxStartups),
		MaxStartupsPerSource: f.maxStartupsPerSource,
		MaxRequestsPerConn:   f.maxRequests,
		VersionGrace:         f.versionGrace,
		IdleTimeout:          offIfZero(f.idleTimeout),
		PenaltyMax:           offIfZero(f.penaltyMax),
	}
}

// startupsFlag is --max-startups start:rate:full, checked when parsed.
type startupsFlag share.Startups

func (v *startupsFlag) String() string { return share.Startups(*v).String() }
func (v *startupsFlag) Type() string   { return "start:rate:full" }
func (v *startupsFlag) Set(s string) error {
	st, err := share.ParseStartups(s)
	if err != nil {
		return err
	}
	*v = startupsFlag(st)
	return nil
}

// offIfZero maps a flag's 0 ("never", "off") to share's negative.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// shareReadyPrefix starts the last banner line; tests and scripts wait
// for it.
const shareReadyPrefix = "dsftp share ready on port "

// startShare makes the server, binds its port and prints the start-up
// banner to out: what is shared and with whom, addresses, host key
// fingerprint, password (if any) and a ready-to-paste sftp command line.
// who says who can read the share (see audience). The caller runs
// srv.Serve(ctx).
func startShare(opts share.Options, who string, out io.Writer) (*share.Server, error) {
	srv, err := share.New(opts)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return nil, err
	}
	printShareBanner(srv, opts, who, out)
	return srv, nil
}

// printShareBanner writes the start-up banner; see startShare.
func printShareBanner(srv *share.Server, opts share.Options, who string, out io.Writer) {
	port := srv.Port()
	addrs := srv.ReachableAddrs()
	shown := make([]string, 0, len(addrs))
	for _, a := range addrs {
		shown = append(shown, a.String())
	}
	fmt.Fprintf(out, "Sharing %s read-only over SFTP\n", srv.Dir())
	fmt.Fprintf(out, "  not shared    %s\n", notShared(srv))
	fmt.Fprintf(out, "  readable by   %s\n", who)
	if note := srv.PortNote(); note != "" {
		fmt.Fprintf(out, "  port          %s\n", note)
	}
	fmt.Fprintf(out, "  listening on  %s\n", strings.Join(shown, ", "))
	fmt.Fprintf(out, "  host key      %s (%s)\n", srv.Fingerprint(), srv.HostKey().Type())
	if pw := srv.Password(); pw != "" {
		fmt.Fprintf(out, "  password      %s   (this run only; any user name)\n", pw)
	}
	if len(addrs) > 0 {
		fmt.Fprintf(out, "  connect with  sftp -P %d dsftp@%s\n", port, hostForCommand(addrs[0].Addr()))
	}
	if opts.AuthorizedKeysFile == "" && opts.Authorizer == nil && !opts.Password {
		fmt.Fprintln(out, "  note          nobody can log in yet: add --authorized-keys FILE or --password")
	}
	fmt.Fprintf(out, "%s%d\n", shareReadyPrefix, port)
}

// notShared says what the share leaves out, for the banner.
func notShared(srv *share.Server) string {
	var parts []string
	if !srv.ShareHidden() {
		parts = append(parts, "hidden files (names starting with \".\")")
	}
	parts = append(parts, "private keys", "dsftp mounts")
	switch n := srv.IgnoreRules(); n {
	case 0:
	case 1:
		parts = append(parts, "1 rule in "+share.IgnoreFile)
	default:
		parts = append(parts, fmt.Sprintf("%d rules in %s", n, share.IgnoreFile))
	}
	return strings.Join(parts, ", ")
}

// hostForCommand formats an address for user@HOST on a command line.
func hostForCommand(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func newShareCmd(g *globals) *cobra.Command {
	var f shareFlags
	var df discoveryFlags // discord: discovery flags (issue 4)
	var lf lanFlags       // lan: --discovery and LAN flags (issue 7)
	var rf upnpFlags      // upnp: port mapping and advertised addresses (upnp.go)
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
			choice := shareDirChoice{dir: ".", explicit: len(args) == 1}
			if len(args) == 1 {
				choice.dir = args[0]
			}
			if err := checkShareDir(choice, "dsftp share", false, cmd.ErrOrStderr()); err != nil {
				return err
			}
			// upnp: bad --advertise/--upnp-lease values are usage errors.
			if _, err := rf.check(); err != nil {
				return err
			}
			// discord: with a bot token, advertise the share in the channel
			// and let the channel's live peers log in (issue 4).
			log := slog.Default()
			tok, useLAN, err := lf.choose(&df, log) // lan: --discovery
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			opts := f.options(choice.dir, "", &df)
			reg := peers.NewRegistry("") // discovery skips our own adverts itself
			if tok != "" || useLAN {     // lan
				opts.Authorizer = reg
				go reg.Run(ctx)
			}
			srv, err := startShare(opts, audience(tok != "", df.channel, useLAN, opts.AuthorizedKeysFile, opts.Password), cmd.OutOrStdout())
			if err != nil {
				return err
			}
			disc, waitDiscovery, err := attachDiscovery(ctx, cancel, &df, tok, reg, shareSelf(srv, nil), log)
			if err != nil {
				srv.Close()
				return err
			}
			if useLAN { // lan: announce on the local network (issue 7)
				waitLAN, err := startLAN(ctx, &lf, reg, shareSelf(srv, nil), advertName(&df), log)
				if err != nil {
					cancel()
					srv.Close()
					return err
				}
				defer func() { cancel(); waitLAN() }()
			}
			// discord: end
			// upnp: forward the port on the router and print the advertised
			// addresses now and whenever they change, re-advertising them in
			// the channel; the mapping is removed before the command returns.
			out := cmd.OutOrStdout()
			tr, err := startReachability(ctx, &rf, listenAddr(srv.Addrs()), cmd.ErrOrStderr(), func(as []addrs.Addr) {
				writeAddrs(out, as)
				if disc != nil {
					disc.SetAddrs(addrs.Strings(as))
				}
			})
			if err != nil {
				srv.Close()
				return err
			}
			defer func() { cancel(); tr.Wait() }()
			// upnp: end
			if err := srv.Serve(ctx); err != nil {
				return err
			}
			if err := waitDiscovery(); err != nil { // discord
				return err
			}
			fmt.Fprintln(os.Stderr, "dsftp share stopped")
			return nil
		},
	}
	f.register(cmd.Flags())
	df.register(cmd.Flags(), true) // discord
	lf.register(cmd.Flags())       // lan
	rf.register(cmd.Flags())       // upnp
	return cmd
}
