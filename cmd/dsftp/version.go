package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() {
	subcommands = append(subcommands, func(*globals) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the version of dsftp",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				v := "(devel)"
				if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
					v = bi.Main.Version
				}
				fmt.Fprintln(cmd.OutOrStdout(), "dsftp", v)
				return nil
			},
		}
	})
}
