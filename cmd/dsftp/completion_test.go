//go:build linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsftp/dsftp/testdata/testenv"
)

// bashCompletionScript is the bash-completion package's loader.
const bashCompletionScript = "/usr/share/bash-completion/bash_completion"

// TestShellCompletion drives real bash (with and without the
// bash-completion package), zsh and fish through tmux: Tab completes the
// values of --discovery, -o and --lan-interface, the mountpoint as a
// directory, and get's PEER with the name of a live LAN peer; no shell
// prints an error.
func TestShellCompletion(t *testing.T) {
	bin := testenv.Binary(t)
	port := testenv.FreeUDPPort(t)
	alice := startLANShare(t, "alice", t.TempDir(), port)
	defer alice.stop(t)
	lanFlags := "--discovery lan --lan-interface lo --lan-port " + strconv.Itoa(port)

	shells := []struct {
		name  string
		argv  []string
		setup string
	}{
		{"bash", []string{"bash", "--norc", "--noprofile"}, "source <(dsftp completion bash)"},
		{"bash+bash-completion", []string{"bash", "--norc", "--noprofile"}, "source " + bashCompletionScript + " && source <(dsftp completion bash)"},
		{"zsh", []string{"zsh", "-f"}, "autoload -U compinit && compinit -u && source <(dsftp completion zsh)"},
		{"fish", []string{"fish", "--no-config"}, "dsftp completion fish | source"},
	}
	cases := []struct {
		line string
		want string // a regexp the screen matches after Tab
	}{
		{"dsftp mount --discovery ", `discord +discord,lan +lan +off`},
		{"dsftp mount -o ", `(?s)allow_other.*default_permissions.*umask=`},
		{"dsftp peers --lan-interface ", `(?m)\blo\b`},
		{"dsftp mount mnt", `dsftp mount mnt-here/`},
		{"dsftp get " + lanFlags + " al", `dsftp get ` + regexp.QuoteMeta(lanFlags) + ` alice:`},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			testenv.Require(t, sh.argv[0])
			if strings.Contains(sh.setup, bashCompletionScript) {
				if _, err := os.Stat(bashCompletionScript); err != nil {
					testenv.Missing(t, "the bash-completion package is not installed (%v)", err)
				}
			}
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "mnt-here"), 0o755); err != nil {
				t.Fatal(err)
			}
			// A race-enabled binary sleeps 1 s at exit unless told not
			// to; every Tab runs it.
			// fish keeps its runtime files in XDG_RUNTIME_DIR, else in
			// $TMPDIR/fish.$USER, which would outlive the test.
			argv := append([]string{"env", "TERM=xterm", "HOME=" + dir, "GORACE=atexit_sleep_ms=0", "DSFTP_DISCORD_TOKEN=",
				"XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "XDG_RUNTIME_DIR=" + dir, "TMPDIR=" + dir,
				"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin"}, sh.argv...)
			x := testenv.StartTmux(t, dir, 160, 40, argv...)
			x.WaitScreen(`[#$>] ?$`, 10*time.Second) // the shell's first prompt
			x.Type(sh.setup)
			x.Keys("Enter")
			for _, c := range cases {
				x.Type("clear")
				x.Keys("Enter")
				x.WaitScreen(`^[^\n]*[#$>]$`, 10*time.Second) // the screen is the prompt alone
				x.Type(c.line)
				x.Keys("Tab")
				time.Sleep(300 * time.Millisecond)
				x.Keys("Tab") // bash lists on the second Tab
				screen := x.WaitScreen(c.want, 15*time.Second)
				if regexp.MustCompile(`(?i)not found|error|usage:`).MatchString(screen) {
					t.Errorf("%s: Tab on %q printed an error:\n%s", sh.name, c.line, screen)
				}
				x.Keys("C-u")
			}
			t.Logf("%s: the last screen:\n%s", sh.name, x.Screen())
		})
	}
}
