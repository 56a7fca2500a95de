package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "dsftp", Short: "root", Long: "dsftp does things."}
	mount := &cobra.Command{Use: "mount MOUNTPOINT", Short: "mount", Example: "  dsftp mount ~/peers", Run: func(*cobra.Command, []string) {}}
	mount.Flags().Bool("daemon", false, "background")
	mount.Flags().String("host-key", "", "key")
	mount.Flags().String("known-hosts", "", "hosts")
	version := &cobra.Command{Use: "version", Short: "version", Run: func(*cobra.Command, []string) {}}
	root.AddCommand(mount, version)
	return root
}

var exits = []Exit{{0, "Success."}, {1, "Failed."}, {2, "Bad usage."}}

// sectionOrder returns the .SH headings of a rendered page, in order.
func sectionOrder(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\.SH (.*)$`).FindAllStringSubmatch(page, -1) {
		out = append(out, strings.Trim(m[1], `"`))
	}
	return out
}

// TestManPages: every page gets EXIT STATUS, the ENVIRONMENT and FILES
// entries of its own flags (the root page all of them), its examples as
// EXAMPLES, all before SEE ALSO; cobra's own EXAMPLE section is gone and
// the command keeps its Example for --help.
func TestManPages(t *testing.T) {
	root := tree()
	dir := t.TempDir()
	if err := Write(root, dir, exits); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		page     string
		sections string
		has, not []string
	}{
		{"dsftp-mount.1", "NAME|SYNOPSIS|DESCRIPTION|OPTIONS|EXIT STATUS|ENVIRONMENT|FILES|EXAMPLES|SEE ALSO",
			[]string{"Bad usage.", "XDG_STATE_HOME", "NOTIFY_SOCKET", "XDG_CONFIG_HOME", "known_names", "host_key", "known_hosts", "dsftp mount ~/peers"},
			[]string{"DSFTP_DISCORD_TOKEN", "SSH_AUTH_SOCK", "fuse.conf", ".dsftpignore"}},
		{"dsftp-version.1", "NAME|SYNOPSIS|DESCRIPTION|OPTIONS|EXIT STATUS|SEE ALSO",
			[]string{"Success."}, []string{"ENVIRONMENT", "FILES"}},
		{"dsftp.1", "NAME|SYNOPSIS|DESCRIPTION|OPTIONS|EXIT STATUS|ENVIRONMENT|FILES|SEE ALSO",
			[]string{"DSFTP_DISCORD_TOKEN", "SSH_AUTH_SOCK", "fuse.conf", ".dsftpignore", "NOTIFY_SOCKET"}, nil},
	} {
		page := read(c.page)
		got := strings.Join(sectionOrder(page), "|")
		if got != c.sections {
			t.Errorf("%s: sections %s, want %s", c.page, got, c.sections)
		}
		for _, s := range c.has {
			if !strings.Contains(page, s) {
				t.Errorf("%s: no %q", c.page, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(page, s) {
				t.Errorf("%s: has %q, which does not concern it", c.page, s)
			}
		}
		if strings.Contains(page, ".TH EXIT") || strings.Contains(page, ".SH EXAMPLE\n") {
			t.Errorf("%s: a stray title or cobra's EXAMPLE section:\n%s", c.page, page)
		}
	}
	mount, _, _ := root.Find([]string{"mount"})
	if mount.Example != "  dsftp mount ~/peers" {
		t.Errorf("mount's Example is %q after the pages were written, want it kept for --help", mount.Example)
	}
}

func TestManDirError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(tree(), file, exits); err == nil || !strings.Contains(err.Error(), "create man directory") {
		t.Errorf("man pages into a file: %v, want an error saying the directory cannot be made", err)
	}
}
