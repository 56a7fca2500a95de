package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/dsftp/dsftp/cmd/internal/client"
	"github.com/dsftp/dsftp/cmd/internal/download"
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
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			spec := args[0]
			dest := "."
			if len(args) == 2 {
				dest = args[1]
			}
			if wait < 0 {
				return usageError{fmt.Errorf("--wait %v: want a duration such as 10s", wait)}
			}
			log := slog.Default()
			if _, _, err := client.SplitSpec(spec, nil); err != nil {
				return usageError{err}
			}
			// get shares nothing: a per-run key signs its client-only
			// adverts and is its own ID, which its registry never lists.
			identity, err := newIdentity()
			if err != nil {
				return err
			}
			reg, pl, err := cf.setup(ssh.FingerprintSHA256(identity.PublicKey()), log)
			if err != nil {
				return err
			}
			defer pl.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go reg.Run(ctx)
			discovering := false
			tok, useLAN, err := lf.choose(&df, log)
			if err != nil {
				return err
			}
			// A --peer name needs no discovery: nothing is posted.
			if !client.Known(spec, reg) {
				me := clientSelf(identity, []ssh.PublicKey{pl.PublicKey()})
				if useLAN {
					waitLAN, err := startLAN(ctx, &lf, reg, me, advertName(&df), log)
					if err != nil {
						return err
					}
					defer func() { cancel(); waitLAN() }()
				}
				// Started after LAN: a LAN peer may answer while Discord
				// reads history and posts. The advert is deleted on exit.
				_, waitDiscord, err := attachDiscovery(ctx, cancel, &df, tok, reg, me, log)
				if err != nil {
					return err
				}
				defer func() {
					cancel()
					// A fatal Discord error ends the get through cancel;
					// it, not "context canceled", is the reason.
					if derr := waitDiscord(); derr != nil && (err == nil || errors.Is(err, context.Canceled)) {
						err = derr
					}
				}()
				discovering = tok != "" || useLAN
			}
			// --wait counts from when discovery is listening (and our
			// advert is out), for finding PEER and for it accepting us.
			deadline := time.Now().Add(wait)
			why := fmt.Sprintf("none by that name appeared within --wait %v", wait)
			if !discovering {
				deadline = time.Now() // only --peer peers: nothing will arrive
				why = "not a --peer name, and --discovery is off"
			}
			name, remotePath, err := client.FindPeer(ctx, reg, spec, deadline, why)
			if err != nil {
				return err
			}
			remote := client.New(client.Options{Registry: reg, Pool: pl})
			src, err := remote.ConnectAccepted(ctx, name, deadline, wait)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opts.Progress = download.NewBar(out, func() int {
					w, _, _ := term.GetSize(int(f.Fd()))
					return w
				})
			} else {
				opts.Progress = &download.Lines{W: out}
			}
			opts.Origin = remote.Origin(name)
			opts.RootName = name
			start := time.Now()
			res, err := download.Get(ctx, src, remotePath, dest, opts)
			if err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return fmt.Errorf("interrupted; the .part file is kept: run the same command again to resume")
				}
				return err
			}
			fmt.Fprintln(out, res.Summary(time.Since(start)))
			return nil
		},
	}
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
