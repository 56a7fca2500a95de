package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dsftp/dsftp/fs"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/pool"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
)

// mountFlags are the flags of `dsftp mount`.
type mountFlags struct {
	peers       []string
	identities  []string
	knownHosts  string
	connections int
	timeout     time.Duration
	attrTTL     time.Duration
	cacheSize   int
	create      bool
	allowOther  bool
	debugFUSE   bool
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

Peers can be given on the command line with --peer; any SFTP server works
(another dsftp share, or a plain OpenSSH server).

Examples:
  dsftp mount ~/peers --peer alice=sftp://alice@192.0.2.7:2222/?fingerprint=SHA256:Xb1...
  dsftp mount ~/peers --peer nas=sftp://me@nas.local/srv/media --identity ~/.ssh/id_ed25519`,
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
		fl.StringArrayVar(&f.peers, "peer", nil, "add a peer: NAME=sftp://[user@]host[:port][/path][?fingerprint=SHA256:...] (repeatable)")
		fl.StringArrayVar(&f.identities, "identity", nil, "private key `FILE` to log in to peers with, besides ssh-agent and the per-run key (repeatable)")
		fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts `FILE` for peers without a pinned fingerprint (default ~/.ssh/known_hosts)")
		fl.IntVar(&f.connections, "connections", pool.DefaultConnections, "SSH connections per peer at most")
		fl.DurationVar(&f.timeout, "timeout", pool.DefaultTimeout, "fail a remote operation when its peer sends nothing for this long")
		fl.DurationVar(&f.attrTTL, "attr-ttl", fs.DefaultAttrTTL, "cache attributes and listings for this long (0 disables)")
		fl.IntVar(&f.cacheSize, "cache-size", fs.DefaultCacheSize, "most attribute entries cached")
		fl.BoolVar(&f.create, "create", false, "create MOUNTPOINT if it does not exist")
		fl.BoolVar(&f.allowOther, "allow-other", false, "let other users see the mount (needs user_allow_other in /etc/fuse.conf)")
		fl.BoolVar(&f.debugFUSE, "debug-fuse", false, "log every FUSE request (very verbose)")
		return cmd
	})
}

func runMount(cmd *cobra.Command, f *mountFlags, dir string) error {
	ctx := cmd.Context()
	log := slog.Default()
	if f.connections < 1 {
		return usageError{fmt.Errorf("--connections %d: want at least 1", f.connections)}
	}
	if f.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: want a positive duration such as 10s", f.timeout)}
	}
	var flagPeers []peers.Peer
	for _, s := range f.peers {
		p, err := peers.ParsePeerFlag(s)
		if err != nil {
			return usageError{err}
		}
		flagPeers = append(flagPeers, p)
	}
	var ids []ssh.Signer
	for _, file := range f.identities {
		s, err := pool.LoadIdentity(file)
		if err != nil {
			return usageError{err}
		}
		ids = append(ids, s)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if err := prepareMountpoint(abs, f.create, log); err != nil {
		return err
	}
	if err := checkFUSE(); err != nil {
		return err
	}

	reg := peers.NewRegistry("")
	for _, p := range flagPeers {
		reg.Upsert(p)
	}
	go reg.Run(ctx)

	pl, err := pool.New(pool.Options{
		Connections:    f.connections,
		Timeout:        f.timeout,
		Identities:     ids,
		AgentSocket:    os.Getenv("SSH_AUTH_SOCK"),
		KnownHostsFile: f.knownHosts,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer pl.Close()

	m, err := fs.New(abs, fs.Options{
		Registry:   reg,
		Pool:       pl,
		AttrTTL:    ttlFlag(f.attrTTL),
		CacheSize:  f.cacheSize,
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
		if err := m.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", abs, err)
		}
		<-unmounted
	case <-unmounted:
		log.Info("unmounted from outside", "mountpoint", abs)
	}
	return nil
}

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
	_, err := os.Stat(dir)
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
	return nil
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
