// Package docs generates dsftp's man pages from its cobra commands, so
// they say exactly what --help says. `make install` runs it.
package docs

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Command is the hidden `dsftp man DIR`: it writes dsftp.1 and one page
// per command (dsftp-mount.1, …) into DIR.
func Command() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (dsftp.1, dsftp-mount.1, ...) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("create man directory: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // reproducible pages: no date line
			hdr := &doc.GenManHeader{Title: "DSFTP", Section: "1", Source: "dsftp", Manual: "dsftp manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("write man pages: %w", err)
			}
			return nil
		},
	}
}
