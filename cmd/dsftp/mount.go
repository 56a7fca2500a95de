package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share"
	"github.com/dsftp/dsftp/share/addrs"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// mountFlags are the flags of `dsftp mount`.
type mountFlags struct {
	client     clientFlags // --peer, --identity, --known-hosts, --connections, --timeout
	attrTTL    time.Duration
	cacheSize  int
	maxListing int
	create     bool
	allowOther bool
	debugFUSE  bool
	shareDir   string
	noShare    bool
	share      shareFlags
	cpuProfile string
	disc       discoveryFlags // discord: discovery flags (issue 4)
	lan        lanFlags       // lan: --discovery and LAN flags (issue 7)
	upnp       upnpFlags      // upnp: port mapping and advertised addresses (upnp.go)
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
		fl.BoolVar(&f.create, "create", false, "create MOUNTPOINT if it does not exist")
		fl.BoolVar(&f.allowOther, "allow-other", false, "let other users see the mount (needs user_allow_other in /etc/fuse.conf)")
		fl.BoolVar(&f.debugFUSE, "debug-fuse", false, "log every FUSE request (very verbose)")
		fl.StringVar(&f.shareDir, "share", ".", "`DIR` to share read-only while mounted")
		fl.BoolVar(&f.noShare, "no-share", false, "do not share any directory, only mount (discovery then advertises only our client key, so peers' shares let us in)")
		f.share.register(fl)
		fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile to `FILE` until exit (for development)")
		_ = fl.MarkHidden("cpu-profile")
		f.disc.register(fl, true) // discord
		f.lan.register(fl)        // lan
		f.upnp.register(fl)       // upnp
		return cmd
	})
}

func runMount(cmd *cobra.Command, f *mountFlags, dir string) (err error) {
	ctx, cancel := context.WithCancel(cmd.Context()) // discord: a fatal discovery error ends the mount
	defer cancel()
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
	// discord: check the discovery flags and token before mounting (issue 4).
	tok, useLAN, err := f.lan.choose(&f.disc, log) // lan: --discovery
	if err != nil {
		return err
	}
	// discord: end
	if _, err := f.upnp.check(); err != nil { // upnp: usage errors first
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if !f.noShare {
		choice := shareDirChoice{dir: f.shareDir, explicit: cmd.Flags().Changed("share")}
		if err := checkShareDir(choice, "dsftp mount "+dir, true, cmd.ErrOrStderr()); err != nil {
			return err
		}
	}
	if err := prepareMountpoint(abs, f.create, log); err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}

	// The share starts first: its host key is this instance's identity,
	// which the registry must never list as a peer. The registry decides
	// which client keys (live peers' keys) may log in. Without a share, a
	// per-run key signs our client-only adverts and is our identity.
	var reg *peers.Registry
	var srv *share.Server
	var identity ssh.Signer
	selfID := ""
	if f.noShare {
		if identity, err = newIdentity(); err != nil {
			return err
		}
		selfID = ssh.FingerprintSHA256(identity.PublicKey())
	} else {
		opts := f.share.options(f.shareDir, abs, &f.disc)
		opts.Authorizer = authorizerFunc(func(k ssh.PublicKey) (string, bool) { return reg.AuthorizedKey(k) })
		opts.Logger = log
		who := audience(tok != "", f.disc.channel, useLAN, opts.AuthorizedKeysFile, opts.Password)
		srv, err = startShare(opts, who, cmd.OutOrStdout())
		if err != nil {
			return err
		}
		defer srv.Close()
		selfID = srv.Fingerprint()
	}
	reg = peers.NewRegistry(selfID)
	useNameBook(reg, log)
	if srv != nil {
		go func() {
			if err := srv.Serve(ctx); err != nil {
				log.Error("share stopped", "err", err)
			}
		}()
	}
	for _, p := range flagPeers {
		reg.Upsert(p)
	}
	go reg.Run(ctx)

	pl, err := f.client.newPool(ids, log)
	if err != nil {
		return err
	}
	defer pl.Close()

	// discord: advertise the share (or, with --no-share, a client-only
	// advert) with our per-run client key; the channel's live peers appear
	// in reg, and their keys may log in.
	me := clientSelf(identity, []ssh.PublicKey{pl.PublicKey()})
	if srv != nil {
		me = shareSelf(srv, []ssh.PublicKey{pl.PublicKey()})
	}
	disc, waitDiscovery, err := attachDiscovery(ctx, cancel, &f.disc, tok, reg, me, log)
	if err != nil {
		return err
	}
	defer func() {
		cancel() // also when unmounted from outside
		if derr := waitDiscovery(); err == nil {
			err = derr
		}
	}()
	if useLAN { // lan: announce on the local network (issue 7)
		waitLAN, err := startLAN(ctx, &f.lan, reg, me, advertName(&f.disc), log)
		if err != nil {
			return err
		}
		defer func() { cancel(); waitLAN() }()
	}
	// discord: end

	// upnp: forward the share's port on the router, print the advertised
	// addresses and re-advertise them in the channel when they change; the
	// mapping is removed before the command returns.
	if srv != nil {
		out := cmd.OutOrStdout()
		tr, err := startReachability(ctx, &f.upnp, listenAddr(srv.Addrs()), cmd.ErrOrStderr(), func(as []addrs.Addr) {
			writeAddrs(out, as)
			if disc != nil {
				disc.SetAddrs(addrs.Strings(as))
			}
		})
		if err != nil {
			return err
		}
		defer func() { cancel(); tr.Wait() }()
	}
	// upnp: end

	m, err := fs.New(abs, fs.Options{
		Registry:   reg,
		Pool:       pl,
		AttrTTL:    ttlFlag(f.attrTTL),
		CacheSize:  f.cacheSize,
		MaxListing: f.maxListing,
		AllowOther: f.allowOther,
		Logger:     log,
		Debug:      f.debugFUSE,
	})
	if err != nil {
		return err
	}
	log.Info("mounted", "mountpoint", abs, "peers", len(reg.List()),
		"client_key", ssh.FingerprintSHA256(pl.PublicKey()))

	unmounted := make(chan struct{})
	go func() {
		m.Wait()
		close(unmounted)
	}()
	select {
	case <-ctx.Done():
		log.Info("unmounting", "mountpoint", abs)
		// Closing the pool first fails the requests still waiting on a
		// peer at once; go-fuse's unmount waits for their handlers.
		pl.Close()
		if err := m.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", abs, err)
		}
		select {
		case <-unmounted:
		case <-time.After(2 * time.Second):
		}
	case <-unmounted:
		log.Info("unmounted from outside", "mountpoint", abs)
	}
	return nil
}

// authorizerFunc adapts a function to share.KeyAuthorizer.
type authorizerFunc func(ssh.PublicKey) (string, bool)

func (f authorizerFunc) AuthorizedKey(k ssh.PublicKey) (string, bool) { return f(k) }

// ttlFlag maps the user's "0 disables" to fs.Options' "negative disables".
func ttlFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// prepareMountpoint cleans up a stale mount left by a killed run and
// checks that dir is a directory, creating it when asked.
func prepareMountpoint(dir string, create bool, log *slog.Logger) error {
	// statfs always reaches a FUSE daemon (stat may be answered from the
	// kernel's attribute cache), so it is what reveals a dead one.
	var sfs syscall.Statfs_t
	err := syscall.Statfs(dir, &sfs)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		log.Warn("cleaning up a stale mount left by an earlier run", "mountpoint", dir)
		if err := lazyUnmount(dir); err != nil {
			return fmt.Errorf("mountpoint %s is a stale mount (transport endpoint is not connected) and unmounting it failed: %w; try: fusermount3 -u -z %s", dir, err, dir)
		}
		_, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !create {
			return usageError{fmt.Errorf("mountpoint %s does not exist; create it (mkdir -p %s) or pass --create", dir, dir)}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create mountpoint: %w", err)
		}
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return usageError{fmt.Errorf("mountpoint %s is not a directory", dir)}
	}
	if fstype := mountType(dir); fstype == "fuse.dsftp" {
		return fmt.Errorf("%s is already mounted by another dsftp; stop it first (or: fusermount3 -u %s)", dir, dir)
	}
	return nil
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point  string // where it is mounted, unescaped
	fstype string // e.g. "fuse.dsftp"
}

// readMountinfo lists this mount namespace's mounts, in mount order; nil
// where /proc is not there.
func readMountinfo() []mountEntry {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		for i := 6; i < len(f)-1; i++ {
			if f[i] == "-" {
				out = append(out, mountEntry{point: unescapeMount(f[4]), fstype: f[i+1]})
				break
			}
		}
	}
	return out
}

// mountType returns the file system type mounted exactly at dir, or "".
func mountType(dir string) string {
	fstype := ""
	for _, m := range readMountinfo() {
		if m.point == dir {
			fstype = m.fstype // the last mount at dir is the visible one
		}
	}
	return fstype
}

// dsftpMounts lists the mountpoints of every dsftp FUSE mount.
func dsftpMounts() []string {
	var out []string
	for _, m := range readMountinfo() {
		if m.fstype == "fuse.dsftp" {
			out = append(out, m.point)
		}
	}
	return out
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			b.WriteByte((s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func lazyUnmount(dir string) error {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err == nil {
			return nil
		}
	}
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u -z: %v: %s", err, out)
	}
	return nil
}

// checkFUSE names the missing piece before go-fuse fails obscurely.
func checkFUSE() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: load the fuse kernel module (modprobe fuse) and install FUSE 3 (apt-get install fuse3)")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return fmt.Errorf("fusermount3 not found: install FUSE 3 (apt-get install fuse3)")
		}
	}
	return nil
}
