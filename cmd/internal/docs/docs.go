// Package docs generates dsftp's man pages from its cobra commands, so
// they say exactly what --help says. `make install` runs it.
package docs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Exit is one exit status of dsftp, as the EXIT STATUS section states it.
type Exit struct {
	Code    int
	Meaning string
}

// Command is the hidden `dsftp man DIR`: it writes dsftp.1 and one page
// per command (dsftp-mount.1, …) into DIR. exits are the exit statuses
// every command shares.
func Command(exits []Exit) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (dsftp.1, dsftp-mount.1, ...) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return Write(cmd.Root(), args[0], exits)
		},
	}
}

// Write writes the man page of root and of every available command below
// it into dir.
func Write(root *cobra.Command, dir string, exits []Exit) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create man directory: %w", err)
	}
	root.DisableAutoGenTag = true // reproducible pages: no date line
	return writeTree(root, dir, exits)
}

func writeTree(c *cobra.Command, dir string, exits []Exit) error {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := writeTree(sub, dir, exits); err != nil {
			return err
		}
	}
	page, err := Page(c, exits)
	if err != nil {
		return err
	}
	name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
	if err := os.WriteFile(filepath.Join(dir, name), page, 0o644); err != nil {
		return fmt.Errorf("write man page %s: %w", name, err)
	}
	return nil
}

// Page renders the man page of c: cobra's NAME, SYNOPSIS, DESCRIPTION
// and OPTIONS, then EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES, then
// SEE ALSO. Cobra has no hook for sections of its own, so they are
// rendered apart and spliced in before SEE ALSO; the command's Example is
// held back from cobra meanwhile, which would print it as EXAMPLE after
// the options.
func Page(c *cobra.Command, exits []Exit) ([]byte, error) {
	example := c.Example
	c.Example = ""
	defer func() { c.Example = example }()
	hdr := &doc.GenManHeader{Title: "DSFTP", Section: "1", Source: "dsftp", Manual: "dsftp manual"}
	var page bytes.Buffer
	if err := doc.GenMan(c, hdr, &page); err != nil {
		return nil, fmt.Errorf("render man page of %s: %w", c.CommandPath(), err)
	}
	extra := sections(c, exits, example)
	out := page.Bytes()
	if i := bytes.Index(out, []byte("\n.SH SEE ALSO\n")); i >= 0 {
		return slices.Concat(out[:i+1], extra, out[i+1:]), nil
	}
	return append(out, extra...), nil
}

// sections renders EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES for c as
// roff, without the preamble md2man puts before the first section. The
// markdown starts with a title block, as cobra's does: without one,
// md2man makes the first heading the page title.
func sections(c *cobra.Command, exits []Exit, example string) []byte {
	var md strings.Builder
	md.WriteString("% DSFTP 1\n# EXIT STATUS\n")
	for _, e := range exits {
		fmt.Fprintf(&md, "**%d**\n: %s\n\n", e.Code, e.Meaning)
	}
	writeList(&md, "ENVIRONMENT", environment, c)
	writeList(&md, "FILES", files, c)
	if example != "" {
		md.WriteString("# EXAMPLES\n```\n" + strings.TrimRight(example, "\n") + "\n```\n")
	}
	roff := md2man.Render([]byte(md.String()))
	if i := bytes.Index(roff, []byte(".SH ")); i > 0 {
		roff = roff[i:]
	}
	return roff
}

func writeList(md *strings.Builder, title string, items []item, c *cobra.Command) {
	var body strings.Builder
	for _, it := range items {
		if it.applies(c) {
			fmt.Fprintf(&body, "**%s**\n: %s\n\n", it.name, it.text)
		}
	}
	if body.Len() > 0 {
		md.WriteString("# " + title + "\n" + body.String())
	}
}
