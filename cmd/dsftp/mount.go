package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/fs"
)

// mountFlags are the flags of `dsftp mount`.
type mountFlags struct {
	client                 clientFlags // --peer, --identity, --known-hosts, --connections, --timeout
	attrTTL                time.Duration
	cacheSize              int
	maxListing, prefetchMB int
	create                 bool
	allowOther             bool
	debugFUSE              bool
	shareDir               string
	noShare                bool
	share                  shareFlags
	cpuProfile             string
	disc                   discoveryFlags
	lan                    lanFlags
	upnp                   upnpFlags
}

func init() {
	subcommands = append(subcommands, func(g *globals) *cobra.Command {
		f := &mountFlags{}
		cmd := &cobra.Command{
			Use:   "mount MOUNTPOINT",
			Short: "Mount every peer's share as MOUNTPOINT/<peer>, read-only",
			Long: `Mount the shares of all live peers under MOUNTPOINT, one directory per
peer, read-only. Runs in the foreground and logs; Ctrl-C (SIGINT) or
SIGTERM unmounts.

Like the original tool, mount also shares a directory (by default the
working directory) read-only, exactly as 'dsftp share' does; --share DIR
picks another, --no-share turns it off. Started in the home folder (or /,
or above it), it refuses to share it unless --share names it. Hidden
files, private keys, .dsftpignore entries and dsftp mounts are never
shared (--share-hidden shares hidden files). The share flags of 'dsftp share'
apply. Live peers' client keys may log in to it. With --no-share, discovery
still posts a client-only advert (our client key, no addresses), which is
what lets the peers' shares accept us; it is not listed as a peer.

Peers can be given on the command line with --peer; any SFTP server works
(another dsftp share, or a plain OpenSSH server). Host keys are checked
against the URL's fingerprint, or else ~/.ssh/known_hosts.

Examples:
  dsftp mount ~/peers --peer alice=sftp://alice@192.0.2.7:2222/?fingerprint=SHA256:Xb1...
  dsftp mount ~/peers --no-share --peer nas=sftp://me@nas.local/srv/media --identity ~/.ssh/id_ed25519
  dsftp mount ~/peers --share ~/public --listen :2222`,
			Args: func(cmd *cobra.Command, args []string) error {
				if len(args) != 1 {
					return usageError{fmt.Errorf("mount needs exactly one MOUNTPOINT, got %d arguments\nRun 'dsftp mount --help' for usage.", len(args))}
				}
				return nil
			},
			RunE: func(cmd *cobra.Command, args []string) error {
				return runMount(cmd, f, args[0])
			},
		}
		fl := cmd.Flags()
		f.client.register(cmd)
		fl.DurationVar(&f.attrTTL, "attr-ttl", fs.DefaultAttrTTL, "cache attributes and listings for this long (0 disables)")
		fl.IntVar(&f.cacheSize, "cache-size", fs.DefaultCacheSize, "most attribute entries cached")
		fl.IntVar(&f.maxListing, "max-listing", fs.DefaultMaxListing, "most entries shown of one peer directory; bigger listings are cut, with a warning")
		fl.IntVar(&f.prefetchMB, "prefetch-memory", fs.DefaultPrefetchMemory>>20, "`MiB` of file contents fetched ahead of a reader going through a directory's files in order (0 disables)")
		fl.BoolVar(&f.create, "create", false, "create MOUNTPOINT if it does not exist")
		fl.BoolVar(&f.allowOther, "allow-other", false, "let other users see the mount (needs user_allow_other in /etc/fuse.conf)")
		fl.BoolVar(&f.debugFUSE, "debug-fuse", false, "log every FUSE request (very verbose)")
		fl.StringVar(&f.shareDir, "share", ".", "`DIR` to share read-only while mounted")
		fl.BoolVar(&f.noShare, "no-share", false, "do not share any directory, only mount (discovery then advertises only our client key, so peers' shares let us in)")
		f.share.register(fl)
		fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile to `FILE` until exit (for development)")
		_ = fl.MarkHidden("cpu-profile")
		f.disc.register(fl, true)
		f.lan.register(fl)
		f.upnp.register(fl)
		return cmd
	})
}

// runMount mounts the live peers' shares at dir until interrupted or
// unmounted from outside, sharing a directory meanwhile (unless --no-share).
func runMount(cmd *cobra.Command, f *mountFlags, dir string) error {
	log := slog.Default()
	flagPeers, ids, err := f.client.parse()
	if err != nil {
		return err
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Bulk reads allocate in the SSH layer for every packet; collecting
	// less often saves about a tenth of the CPU per byte, and the soft
	// limit keeps the heap modest.
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(512 << 20)
	cfg := instance.Config{
		Peers: flagPeers, Pool: f.client.poolOptions(ids, log), RememberNames: true,
		Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Logger: log,
	}
	// Check the discovery flags and token, and the usage of the UPnP
	// flags, before touching the mountpoint.
	if err := discoveryConfig(&cfg, &f.disc, &f.lan, log); err != nil {
		return err
	}
	rc, err := f.upnp.check()
	if err != nil {
		return err
	}
	if !f.noShare {
		if err := instance.CheckShareDir(f.shareDir, cmd.Flags().Changed("share"), "dsftp mount "+dir, true, cmd.ErrOrStderr()); err != nil {
			return err
		}
	}
	abs, err := fs.PrepareMountpoint(dir, f.create, log)
	if err != nil {
		return err
	}
	if !f.noShare {
		opts := f.share.options(f.shareDir, &f.disc)
		opts.Logger = log
		cfg.Share, cfg.Reach, cfg.Mountpoint = &opts, rc, abs
	}
	in, err := instance.Start(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	in.Go(func(ctx context.Context) error {
		return in.Mount(ctx, abs, fs.Options{AttrTTL: offIfZero(f.attrTTL), CacheSize: f.cacheSize,
			MaxListing: f.maxListing, PrefetchMemory: int64(f.prefetchMB) << 20, AllowOther: f.allowOther, Logger: log, Debug: f.debugFUSE})
	})
	return in.Wait()
}
