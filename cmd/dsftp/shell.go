package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/dsftp/dsftp/cmd/internal/peerconn"
	"github.com/dsftp/dsftp/cmd/internal/shell"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/share"
)

func init() {
	subcommands = append(subcommands, newShellCmd)
}

// settleWindow is how long after its first advert discovery counts as
// still settling: adverts of peers already online arrive within it.
const settleWindow = 5 * time.Second

func newShellCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var noShare bool
	var shareDir string
	var sf shareFlags
	var history string
	var df discoveryFlags
	var lf lanFlags // lan: --discovery and LAN flags (issue 7)
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Browse and download from peers interactively",
		Long: `shell is an interactive client for the peers' shares, for machines without
FUSE or for people who prefer it. Commands: list_peers, connect [peer], ls [-l],
cd, pwd, get [-r] [-f] [--sha256], lcd, lpwd, lls, disconnect, help, exit.
Tab completes commands, peer names and paths; Ctrl-C stops a running get
(run it again to resume); Ctrl-D exits.

Like mount, the shell shares the working directory (or --share DIR)
read-only while it runs (--no-share turns that off; the home folder is
shared only when --share names it) and finds peers as --discovery says: through
the Discord channel, on the local network (lan), or only --peer (off).
With --no-share it still advertises its client key (a client-only advert,
not listed as a peer), which is what lets the peers' shares accept it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			// Discovery and share logs would break into the prompt; only
			// warnings and errors reach the terminal.
			quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			tok, useLAN, err := lf.choose(&df, quiet) // lan: --discovery
			if err != nil {
				return err
			}
			// Ctrl-C belongs to the shell (it stops a get), so the root
			// context's SIGINT handling must not end the session.
			ctx, cancel := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer cancel()
			// Like the original tool, the shell shares the working
			// directory. The share starts first: its host key is this
			// instance's identity, which the registry must never list.
			var reg *peers.Registry
			var srv *share.Server
			var identity ssh.Signer
			selfID := ""
			if noShare {
				// Our client-only adverts are signed with a per-run key.
				if identity, err = newIdentity(); err != nil {
					return err
				}
				selfID = ssh.FingerprintSHA256(identity.PublicKey())
			} else {
				choice := shareDirChoice{dir: shareDir, explicit: cmd.Flags().Changed("share")}
				if err := checkShareDir(choice, "dsftp shell", true, cmd.ErrOrStderr()); err != nil {
					return err
				}
				opts := sf.options(shareDir, "", &df)
				opts.Authorizer = authorizerFunc(func(k ssh.PublicKey) (string, bool) { return reg.AuthorizedKey(k) })
				opts.Logger = quiet
				srv, err = startShare(opts, audience(tok != "", df.channel, useLAN, opts.AuthorizedKeysFile, opts.Password), cmd.OutOrStdout())
				if err != nil {
					return fmt.Errorf("share %s (or run with --no-share): %w", shareDir, err)
				}
				defer srv.Close()
				selfID = srv.Fingerprint()
			}
			// Connection warnings would break into the prompt too; the
			// shell reports failures itself, one line per command.
			reg, pl, err := cf.setup(selfID, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
			if err != nil {
				return err
			}
			defer pl.Close()
			if srv != nil {
				go func() {
					if err := srv.Serve(ctx); err != nil {
						slog.Error("share stopped", "err", err)
					}
				}()
			}
			go reg.Run(ctx)
			me := clientSelf(identity, []ssh.PublicKey{pl.PublicKey()})
			if srv != nil {
				me = shareSelf(srv, []ssh.PublicKey{pl.PublicKey()})
			}
			// lan: announce the share on the local network; peers that
			// hear us answer at once, so they arrive within settleWindow.
			var lanSettleAt time.Time
			if useLAN {
				waitLAN, err := startLAN(ctx, &lf, reg, me, advertName(&df), quiet)
				if err != nil {
					return err
				}
				defer func() { cancel(); waitLAN() }()
				lanSettleAt = time.Now().Add(settleWindow)
			}

			// Discovery starts in the background so the shell answers at
			// once; until the first advert is out and a little after,
			// list_peers says more peers may arrive.
			var settleAt atomic.Int64 // unix nanos; 0 while starting
			waitDiscovery := make(chan func() error, 1)
			banner := "dsftp shell: type help for the commands, Tab to complete, Ctrl-D to leave."
			if useLAN {
				banner += "\nFinding peers on the local network; list_peers shows them as they arrive."
			}
			if tok != "" {
				banner += "\nFinding peers through Discord; list_peers shows them as they arrive."
				go func() {
					_, wait, err := attachDiscovery(ctx, cancel, &df, tok, reg, me, quiet)
					if err != nil {
						quiet.Error("Discord discovery failed; only --peer peers are available", "err", err)
						wait = func() error { return nil }
						settleAt.Store(1)
					} else {
						settleAt.Store(time.Now().Add(settleWindow).UnixNano())
					}
					waitDiscovery <- wait
				}()
				defer func() {
					cancel()
					if derr := (<-waitDiscovery)(); err == nil {
						err = derr
					}
				}()
			}
			remote := peerconn.New(peerconn.Options{Registry: reg, Pool: pl, Settling: func() bool {
				if useLAN && time.Now().Before(lanSettleAt) {
					return true
				}
				if tok == "" {
					return false
				}
				at := settleAt.Load()
				return at == 0 || time.Now().UnixNano() < at
			}})
			sh, err := shell.New(shell.Options{
				Remote:      remote,
				Terminal:    term.IsTerminal(int(os.Stdout.Fd())),
				Timeout:     4 * cf.timeout,
				HistoryFile: history,
				Banner:      banner,
			})
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case sig := <-sigs:
						if sig == syscall.SIGTERM {
							cancel()
							return
						}
						sh.Interrupt()
					}
				}
			}()
			if err := sh.Run(ctx); err != nil {
				return fmt.Errorf("shell: %w", err)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&shareDir, "share", ".", "`DIR` to share read-only while the shell runs")
	cmd.Flags().BoolVar(&noShare, "no-share", false, "do not share the working directory while the shell runs (discovery then advertises only our client key, so peers' shares let us in)")
	sf.register(cmd.Flags())
	df.register(cmd.Flags(), true) // discord
	lf.register(cmd.Flags())       // lan
	cmd.Flags().StringVar(&history, "history", "", "file to keep the command history in (default: history only for this session)")
	return cmd
}
