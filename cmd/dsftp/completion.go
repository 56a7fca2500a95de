package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/fs"
)

func init() {
	subcommands = append(subcommands, newCompletionCmd)
}

// newCompletionCmd replaces cobra's completion command: its bash script
// calls helpers of the bash-completion package (_get_comp_words_by_ref,
// _filedir), which a plain bash lacks; ours falls back to stand-ins.
func newCompletionCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long: `completion prints the completion script for a shell. It completes the
commands, flags, flag values (--discovery, -o, --lan-interface,
--log-level) and, for get, the names of the peers found within 3 s.

  bash:  source <(dsftp completion bash)       (works with or without the bash-completion package)
  zsh:   source <(dsftp completion zsh)        (after compinit)
  fish:  dsftp completion fish | source

make install puts the scripts where each shell finds them.`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return writeBashCompletion(root, out)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			default:
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
}

// bashFallbacks stand in for the bash-completion helpers cobra's script
// calls when that package is not loaded. Words are split at blanks only,
// as `_get_comp_words_by_ref -n =:` would, so "--discovery=lan" and
// "alice:path" stay one word.
const bashFallbacks = `
# Stand-ins for the bash-completion package's helpers, used only when it
# is not loaded (a plain bash).
__dsftp_comp_words()
{
    local line="${COMP_LINE:0:COMP_POINT}"
    read -ra words <<< "$line"
    if [[ -z $line || $line == *[[:blank:]] ]]; then
        words+=("")
    fi
    cword=$(( ${#words[@]} - 1 ))
    cur="${words[cword]}"
    prev="${words[cword-1]}"
}

__dsftp_filedir()
{
    if declare -F _filedir >/dev/null 2>&1; then
        _filedir "$@"
        return
    fi
    local IFS=$'\n'
    if [[ ${1-} == -d ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    if [[ $(type -t compopt) == builtin ]]; then
        compopt -o filenames
    fi
}
`

// bashPatches are the places in cobra's script that call bash-completion.
var bashPatches = []struct{ old, new string }{
	{
		"    _get_comp_words_by_ref \"$@\" cur prev words cword\n",
		"    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then\n" +
			"        _get_comp_words_by_ref \"$@\" cur prev words cword\n" +
			"    else\n" +
			"        __dsftp_comp_words\n" +
			"    fi\n",
	},
	{"filteringCmd=\"_filedir ", "filteringCmd=\"__dsftp_filedir "},
	{"&& _filedir -d &&", "&& __dsftp_filedir -d &&"},
	{"            _filedir -d\n", "            __dsftp_filedir -d\n"},
	{"                    _filedir\n", "                    __dsftp_filedir\n"},
}

// writeBashCompletion writes cobra's bash script with the calls into
// bash-completion routed through bashFallbacks.
func writeBashCompletion(root *cobra.Command, out io.Writer) error {
	var b bytes.Buffer
	if err := root.GenBashCompletionV2(&b, true); err != nil {
		return fmt.Errorf("generate bash completion: %w", err)
	}
	s := b.String()
	for _, p := range bashPatches {
		if !strings.Contains(s, p.old) {
			return fmt.Errorf("generate bash completion: cobra's script changed: no %q", strings.TrimSpace(p.old))
		}
		s = strings.ReplaceAll(s, p.old, p.new)
	}
	_, err := io.WriteString(out, bashFallbacks+s)
	return err
}

// completeFlagValues registers the completion of the flag values that
// have a fixed set, or one the machine knows, on cmd and its children.
func completeFlagValues(cmd *cobra.Command) {
	fixed := map[string][]string{
		"discovery": {"discord", "lan", "off", "discord,lan"},
		"option":    mountOptionCompletions(),
		"log-level": {"debug", "info", "warn", "error"},
	}
	for name, vals := range fixed {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	if cmd.Flags().Lookup("lan-interface") != nil {
		_ = cmd.RegisterFlagCompletionFunc("lan-interface", completeInterfaces)
	}
	if dirArg[cmd.Name()] && cmd.ValidArgsFunction == nil {
		cmd.ValidArgsFunction = completeOneDir
	}
	for _, c := range cmd.Commands() {
		completeFlagValues(c)
	}
}

// dirArg are the commands whose one argument is a directory.
var dirArg = map[string]bool{"mount": true, "share": true}

func completeOneDir(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// mountOptionCompletions are the -o names; those that take a value end
// in "=" (the shell then adds no space).
func mountOptionCompletions() []string {
	var out []string
	for _, n := range fs.MountOptionNames {
		switch n {
		case "uid", "gid", "umask", "fsname", "subtype":
			n += "="
		}
		out = append(out, n)
	}
	return out
}

// completeInterfaces lists the machine's network interfaces.
func completeInterfaces(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// peerCompletionTime bounds the discovery behind a peer-name completion:
// a Tab must not hang.
const peerCompletionTime = 3 * time.Second

// completePeerSpec completes get's PEER:PATH with the names of the peers
// found as the command line's discovery flags say (the Discord history,
// a LAN query), within peerCompletionTime. The path is not completed.
func completePeerSpec(df *discoveryFlags, lf *lanFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault // DEST: local files
		}
		if strings.Contains(toComplete, ":") {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, n := range peerNames(cmd.Context(), df, lf) {
			if strings.HasPrefix(n, toComplete) {
				names = append(names, n+":")
			}
		}
		return names, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
}

// peerNames are the display names of the live peers, found quietly
// within peerCompletionTime; nothing when discovery fails.
func peerNames(ctx context.Context, df *discoveryFlags, lf *lanFlags) []string {
	log := slog.New(slog.DiscardHandler)
	var cfg instance.Config
	if err := discoveryConfig(&cfg, df, lf, log); err != nil || cfg.Discord == nil && cfg.LAN == nil {
		return nil
	}
	cfg.Err, cfg.Logger = io.Discard, log
	if cfg.Discord != nil {
		cfg.Discord.RequestTimeout = peerCompletionTime
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, peerCompletionTime)
	defer cancel()
	// The LAN listens for minPeersWait; Discord is read meanwhile.
	rows, _, err := instance.List(ctx, cfg, minPeersWait)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // cobra's scripts drop stderr; its debug log keeps it
		return nil
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names
}
