package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/lifecycle"
)

func init() {
	subcommands = append(subcommands, func(*globals) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the version and commit of dsftp",
			Example: `  dsftp version
  dsftp --version`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				fmt.Fprintln(cmd.OutOrStdout(), lifecycle.Version())
				return nil
			},
		}
	})
}
