package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/client"
	"github.com/dsftp/dsftp/cmd/internal/download"
	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/cmd/internal/lifecycle"
	"github.com/dsftp/dsftp/peers"
)

func init() {
	subcommands = append(subcommands, newGetCmd)
}

func newGetCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var df discoveryFlags
	var lf lanFlags
	var opts download.Options
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "get [flags] PEER:PATH [DEST]",
		Short: "Download a file or directory from a peer",
		Long: `get downloads PATH from the share of PEER into DEST (default: the current
directory). The file is written as DEST.part and renamed when complete; an
interrupted get run again resumes when the remote file is unchanged. An
existing file is never overwritten without -f. Nothing is written outside
DEST's directory, whatever names the peer sends.

PEER is a --peer name, or a peer found as --discovery says, like mount and
shell do: in the Discord channel (the default with a bot token) or on the
local network (lan, the default without one). get shares nothing, so it
advertises only its per-run client key (a client-only advert, which peers
do not list) until it exits; that is what lets PEER's share accept it. It
waits up to --wait for PEER to appear and to accept the key.`,
		Example: `  dsftp get alice:photos/cat.jpg
  dsftp get --discovery lan -r --sha256 bob:/games ~/Downloads/
  dsftp get --peer "alice=sftp://dsftp@192.0.2.7:2200/?fingerprint=SHA256:Xb1..." alice:big.bin`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dest := "."
			if len(args) == 2 {
				dest = args[1]
			}
			return getCmd(cmd, g, args[0], dest, &cf, &df, &lf, opts, wait)
		},
	}
	cmd.ValidArgsFunction = completePeerSpec(&df, &lf)
	cf.register(cmd)
	df.register(cmd.Flags(), true) // --name is what the peer's share logs for us
	lf.register(cmd.Flags())
	cmd.Flags().BoolVarP(&opts.Recursive, "recursive", "r", false, "download a directory with everything in it")
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "overwrite existing files")
	cmd.Flags().BoolVar(&opts.SHA256, "sha256", false, "hash each file while downloading and print its SHA-256")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for PEER to be discovered and to accept our key")
	cmd.Flags().DurationVar(&opts.StallTimeout, "stall-timeout", 30*time.Second, "give up when a peer sends nothing for this long (the .part file is kept)")
	return cmd
}

// getCmd downloads spec (PEER:PATH) into dest. It finds PEER among the
// --peer peers or, failing that, by discovery, advertising only our client
// key until it exits.
func getCmd(cmd *cobra.Command, g *globals, spec, dest string, cf *clientFlags, df *discoveryFlags, lf *lanFlags,
	opts download.Options, wait time.Duration) error {
	if wait < 0 {
		return usageError{fmt.Errorf("--wait %v: want a duration such as 10s", wait)}
	}
	if _, _, err := client.SplitSpec(spec, nil); err != nil {
		return err
	}
	log := slog.Default()
	ps, ids, err := cf.parse()
	if err != nil {
		return err
	}
	// get reports a peer it cannot reach in its own error, once; the
	// pool's warning about it goes only to a log the user chose.
	poolLog := log
	if !g.log.Chosen() {
		poolLog = lifecycle.AtLeast(slog.LevelError)
	}
	cfg := instance.Config{
		Peers: ps, Pool: cf.poolOptions(ids, poolLog),
		// A --peer name needs no discovery: nothing is posted.
		Discover: func(reg *peers.Registry) bool { return !client.Known(spec, reg) },
		Out:      cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Logger: log,
	}
	if err := discoveryConfig(&cfg, df, lf, log); err != nil {
		return err
	}
	in, err := instance.Start(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	in.Go(func(ctx context.Context) error {
		return in.Remote().Get(ctx, spec, dest, opts, in.Discovering, wait, cmd.OutOrStdout())
	})
	return in.Wait()
}
