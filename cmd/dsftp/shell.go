package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/cmd/internal/lifecycle"
	"github.com/dsftp/dsftp/cmd/internal/shell"
)

func init() {
	subcommands = append(subcommands, newShellCmd)
}

func newShellCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var noShare bool
	var shareDir string
	var sf shareFlags
	var history string
	var df discoveryFlags
	var lf lanFlags
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
		Example: `  dsftp shell
  dsftp shell --discovery lan --lan-interface eth0
  dsftp shell --no-share --discovery off --peer "alice=sftp://dsftp@192.0.2.7:2200/?fingerprint=SHA256:Xb1..."`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShellCmd(cmd, g, &cf, &df, &lf, &sf, shareDir, noShare, history)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&shareDir, "share", ".", "`DIR` to share read-only while the shell runs")
	cmd.Flags().BoolVar(&noShare, "no-share", false, "do not share the working directory while the shell runs (discovery then advertises only our client key, so peers' shares let us in)")
	sf.register(cmd.Flags())
	df.register(cmd.Flags(), true)
	lf.register(cmd.Flags())
	cmd.Flags().StringVar(&history, "history", "", "file to keep the command history in (default: history only for this session)")
	return cmd
}

// runShellCmd runs the interactive shell, sharing the working directory
// meanwhile (unless noShare) and finding peers as --discovery says.
func runShellCmd(cmd *cobra.Command, g *globals, cf *clientFlags, df *discoveryFlags, lf *lanFlags, sf *shareFlags, shareDir string, noShare bool, history string) error {
	// Discovery and share logs would break into the prompt (or, piped,
	// into its output): only warnings and errors, unless the user chose a
	// log (--log-file gets the rest) or a level.
	quiet := slog.Default()
	if !g.log.Chosen() {
		quiet = lifecycle.AtLeast(slog.LevelWarn)
	}
	cfg := instance.Config{
		ShareHint: fmt.Sprintf("share %s (or run with --no-share)", shareDir),
		// Discovery starts in the background so the shell answers at once;
		// until the first advert is out and a little after, list_peers says
		// more peers may arrive.
		DiscordInBackground: true,
		Out:                 cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Logger: quiet,
	}
	if err := discoveryConfig(&cfg, df, lf, quiet); err != nil {
		return err
	}
	ps, ids, err := cf.parse()
	if err != nil {
		return err
	}
	// Connection warnings would break into the prompt too; the shell
	// reports failures itself, one line per command.
	cfg.Peers = ps
	cfg.Pool = cf.poolOptions(ids, lifecycle.AtLeast(slog.LevelError))
	if !noShare {
		if err := instance.CheckShareDir(shareDir, cmd.Flags().Changed("share"), "dsftp shell", true, cmd.ErrOrStderr()); err != nil {
			return err
		}
		opts := sf.options(shareDir, df)
		opts.Logger = quiet
		cfg.Share = &opts
	}
	// Ctrl-C belongs to the shell (it stops a get), so the root context's
	// SIGINT handling must not end the session.
	in, err := instance.Start(context.WithoutCancel(cmd.Context()), cfg)
	if err != nil {
		return err
	}
	banner := shell.Banner(cfg.LAN != nil, cfg.Discord != nil)
	in.Go(func(ctx context.Context) error {
		sh, err := shell.New(shell.Options{Remote: in.Remote(), Terminal: term.IsTerminal(int(os.Stdout.Fd())),
			Timeout: 4 * cf.timeout, HistoryFile: history, Banner: banner})
		if err != nil {
			return err
		}
		if err := sh.RunWithSignals(ctx); err != nil {
			return fmt.Errorf("shell: %w", err)
		}
		return nil
	})
	return in.Wait()
}
