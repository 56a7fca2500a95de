// Command dsftp mounts the shared folders of the other members of a Discord
// channel and shares the current directory with them, read-only.
//
// This package is thin wiring: flags, signals, logging and exit codes. The
// work is in share/, peers/ and fs/.
package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/client"
	"github.com/dsftp/dsftp/cmd/internal/docs"
	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/cmd/internal/lifecycle"
	"github.com/dsftp/dsftp/fs"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // bad flags or arguments
)

// exitStatuses are the exit codes as the man pages state them.
var exitStatuses = []docs.Exit{
	{Code: exitOK, Meaning: "Success. share, mount, shell and peers also exit 0 when stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP: the mount is unmounted and the advert withdrawn."},
	{Code: exitError, Meaning: "The command ran and failed; the message says why. An interrupted get exits 1 too (its .part file is kept: run it again to resume)."},
	{Code: exitUsage, Meaning: "Bad flags or arguments, including a mountpoint that cannot be used, an implicit share of the home folder, and a malformed PEER:PATH."},
}

// usageError marks errors that come from bad flags or arguments.
type usageError struct{ error }

// globals are the flags every command has.
type globals struct {
	log lifecycle.Logging
}

// subcommands are added by init functions in this package's other files,
// one file per command.
var subcommands []func(*globals) *cobra.Command

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "dsftp",
		Short: "Mount your friends' shared folders, found through a Discord channel",
		Long: `dsftp shares a folder read-only over SFTP and mounts the shares of the
other members of a Discord channel (or of the local network) as one
directory per peer.

  dsftp mount ~/peers     share the working directory and mount everyone else's
  dsftp share             only share the working directory`,
		Example: `  mkdir -p ~/peers && cd ~/Public && dsftp mount ~/peers
  dsftp peers
  dsftp get alice:photos/cat.jpg
  dsftp shell --no-share`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       lifecycle.Version(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := g.log.Setup(cmd.Flags()); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	g.log.Register(root.PersistentFlags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	})
	for _, mk := range subcommands {
		root.AddCommand(mk(g))
	}
	root.AddCommand(docs.Command(exitStatuses))
	completeFlagValues(root)
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	ctx, stop := lifecycle.SignalContext()
	defer stop()
	err := root.ExecuteContext(ctx)
	lifecycle.FlushLogs()
	if err == nil {
		return exitOK
	}
	lifecycle.Failed(err)
	fmt.Fprintf(os.Stderr, "dsftp: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) || slices.ContainsFunc(usageErrs, func(e error) bool { return errors.Is(err, e) }) {
		return exitUsage
	}
	return exitError
}

// usageErrs are the libraries' errors that mean the user asked for
// something wrong (a bad mountpoint, the home folder, no PEER:PATH).
var usageErrs = []error{fs.ErrBadMountpoint, instance.ErrHomeShare, client.ErrSpec}

// isCobraUsage recognises cobra's own argument errors (unknown command,
// wrong number of arguments), which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
