package main

import (
	"regexp"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// history matches phrases that tell what dsftp once was or did: help
// text and man pages describe what it does, history lives in git.
var history = regexp.MustCompile(`(?i)\b(original tool|like the original|used to|no longer|anymore|issue \d|before this|older dsftp|from before)\b`)

// TestHelpNoHistory: no command's --help (and so no man page) speaks of
// history, in its description, examples or flags.
func TestHelpNoHistory(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(what, text string) {
			if m := history.FindString(text); m != "" {
				t.Errorf("%s %s says %q: describe what it does, not what it was", c.CommandPath(), what, m)
			}
		}
		check("Short", c.Short)
		check("Long", c.Long)
		check("Example", c.Example)
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { check("--"+f.Name, f.Usage) })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd()
	walk(root)
	if len(root.Commands()) < 6 {
		t.Fatalf("walked %d commands under dsftp, want share, mount, shell, get, peers, version and more", len(root.Commands()))
	}
}
