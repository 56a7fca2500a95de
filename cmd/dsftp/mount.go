package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/cmd/internal/lifecycle"
	"github.com/dsftp/dsftp/cmd/internal/mountflags"
	"github.com/dsftp/dsftp/fs"
)

// mountFlags are the flags of `dsftp mount`.
type mountFlags struct {
	client     clientFlags // --peer, --identity, --known-hosts, --connections, --timeout
	fs         mountflags.Flags
	shareDir   string
	noShare    bool
	share      shareFlags
	cpuProfile string
	disc       discoveryFlags
	lan        lanFlags
	upnp       upnpFlags
}

func init() {
	subcommands = append(subcommands, func(g *globals) *cobra.Command {
		f := &mountFlags{}
		cmd := &cobra.Command{
			Use:   "mount MOUNTPOINT",
			Short: "Mount every peer's share as MOUNTPOINT/PEER, read-only",
			Long: `Mount the shares of all live peers under MOUNTPOINT, one directory per
peer, read-only. Runs in the foreground and logs; Ctrl-C (SIGINT),
SIGTERM or SIGHUP unmounts. --daemon runs it in the background instead
(as rclone does): the command returns once the mount is ready and prints
the background PID (--pid-file writes it to a file); SIGHUP to that process
flushes the mount's caches and re-reads .dsftpignore instead of stopping it.

While mounted, it also shares a directory (by default the working
directory) read-only, exactly as 'dsftp share' does; --share DIR
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

-o takes the FUSE mount options sshfs and rclone users know; an unknown
one is refused. uid=, gid= and umask= are --uid, --gid and --umask
(given both, the flag wins); allow_other is --allow-other; allow_root lets
root use the mount too and no one else (both need user_allow_other in
/etc/fuse.conf unless run as root); auto_unmount keeps fusermount3 behind
to unmount when dsftp dies, even by kill -9; fsname=NAME is the source
mount and df show (default dsftp); subtype=NAME makes the type
fuse.NAME (other dsftp processes then do not recognise the mount as one
to keep out of their share). ro, nosuid, nodev and default_permissions
are always on.`,
			Example: `  mkdir -p ~/peers && cd ~/Public && dsftp mount ~/peers
  dsftp mount ~/peers --daemon --log-file ~/dsftp.log
  dsftp mount ~/peers -o allow_other,umask=022,fsname=friends --no-share
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
				return runMount(cmd, g, f, args[0])
			},
		}
		fl := cmd.Flags()
		f.client.register(cmd)
		f.fs.Register(fl)
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
func runMount(cmd *cobra.Command, g *globals, f *mountFlags, dir string) error {
	log := slog.Default()
	flagPeers, ids, err := f.client.parse()
	if err != nil {
		return err
	}
	fsOpts, err := f.fs.FSOptions()
	if err != nil {
		return usageError{err}
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
	// less often saves about a tenth of the CPU per byte. The soft limit
	// keeps the process within the content cache plus about 50 MB (the
	// memory bound in fs/README.md): the read-ahead of all files together and
	// the transport's buffers fit in the rest. Big listings may need more
	// live memory than that: the limit follows it (memlimit.go).
	debug.SetGCPercent(400)
	memCtx, stopMem := context.WithCancel(cmd.Context())
	defer stopMem()
	go followLiveHeap(memCtx, int64(f.fs.PrefetchMB)<<20+32<<20)
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
	abs, err := fs.PrepareMountpoint(dir, f.fs.Create, log)
	if err != nil {
		return err
	}
	if err := fsOpts.Check(abs); err != nil {
		return err
	}
	if p := f.fs.PIDFile; p != "" {
		if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			return usageError{fmt.Errorf("--pid-file %s: its directory does not exist", p)}
		}
	}
	if f.fs.Daemon && !lifecycle.IsDaemonChild() {
		return lifecycle.Daemonize(g.log.File)
	}
	if !f.noShare {
		opts := f.share.options(f.shareDir, &f.disc)
		opts.Logger = log
		cfg.Share, cfg.Reach, cfg.Mountpoint = &opts, rc, abs
	}
	removePID, err := lifecycle.WritePIDFile(f.fs.PIDFile)
	if err != nil {
		return err
	}
	defer removePID()
	in, err := instance.Start(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	in.ReloadOn(lifecycle.Reloads())
	fsOpts.Logger, fsOpts.Ready = log, lifecycle.Ready
	in.Go(func(ctx context.Context) error {
		defer lifecycle.Stopping()
		return in.Mount(ctx, abs, fsOpts)
	})
	if err := in.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "dsftp mount stopped: %s unmounted in %.1f s\n", abs, in.StopTime().Seconds())
	return nil
}
