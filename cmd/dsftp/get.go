package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dsftp/dsftp/cmd/internal/peerconn"
	"github.com/dsftp/dsftp/cmd/internal/shell"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/download"
)

func init() {
	subcommands = append(subcommands, newGetCmd)
}

func newGetCmd(g *globals) *cobra.Command {
	var cf clientFlags
	var opts download.Options
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "get [flags] PEER:PATH [DEST]",
		Short: "Download a file or directory from a peer",
		Long: `get downloads PATH from the share of PEER into DEST (default: the current
directory). The file is written as DEST.part and renamed when complete; an
interrupted get run again resumes when the remote file is unchanged. An
existing file is never overwritten without -f. Nothing is written outside
DEST's directory, whatever names the peer sends.`,
		Example: `  dsftp get alice:photos/cat.jpg
  dsftp get -r --sha256 bob:/games ~/Downloads/`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := args[0]
			dest := "."
			if len(args) == 2 {
				dest = args[1]
			}
			reg, pl, err := cf.setup("", slog.Default())
			if err != nil {
				return err
			}
			defer pl.Close()
			ctx := cmd.Context()
			go reg.Run(ctx)
			name, remotePath, err := findPeer(ctx, reg, spec, wait)
			if err != nil {
				return err
			}
			remote := peerconn.New(peerconn.Options{Registry: reg, Pool: pl})
			src, err := remote.Connect(ctx, name)
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
			d := time.Since(start)
			fmt.Fprintf(out, "%d file(s), %s: fetched %d bytes in %.1fs (%s/s)\n", len(res.Files), download.Size(res.Bytes),
				res.Fetched, d.Seconds(), download.Size(int64(float64(res.Fetched)/max(d.Seconds(), 0.001))))
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVarP(&opts.Recursive, "recursive", "r", false, "download a directory with everything in it")
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "overwrite existing files")
	cmd.Flags().BoolVar(&opts.SHA256, "sha256", false, "hash each file while downloading and print its SHA-256")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for PEER to be discovered")
	cmd.Flags().DurationVar(&opts.StallTimeout, "stall-timeout", 30*time.Second, "give up when a peer sends nothing for this long (the .part file is kept)")
	return cmd
}

// findPeer splits PEER:PATH, preferring the longest registered peer name
// before a colon, and waits up to wait for the peer to appear.
func findPeer(ctx context.Context, reg *peers.Registry, spec string, wait time.Duration) (name, path string, err error) {
	if !strings.Contains(spec, ":") {
		return "", "", usageError{fmt.Errorf("%q: want PEER:PATH, e.g. alice:photos/cat.jpg", spec)}
	}
	ch, stop := reg.Watch()
	defer stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		for i := len(spec) - 1; i >= 0; i-- {
			if spec[i] != ':' {
				continue
			}
			if _, ok := reg.Get(spec[:i]); ok {
				return spec[:i], spec[i+1:], nil
			}
		}
		select {
		case <-ch:
			continue
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-deadline.C:
		}
		want := spec[:strings.Index(spec, ":")]
		var names []string
		for _, e := range reg.List() {
			names = append(names, e.DisplayName)
		}
		msg := fmt.Sprintf("unknown peer %q (none by that name appeared within %v)", want, wait)
		if near, ok := shell.Closest(want, names); ok {
			msg += fmt.Sprintf("; did you mean %q?", near)
		} else if len(names) > 0 {
			msg += "; known peers: " + strings.Join(names, ", ")
		}
		return "", "", errors.New(msg)
	}
}
