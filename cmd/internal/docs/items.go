package docs

import "github.com/spf13/cobra"

// item is one entry of the ENVIRONMENT or FILES section. A page lists the
// items that concern its command; the root page (dsftp.1) lists them all.
type item struct {
	name, text string
	// on says whether the item concerns c, mostly by the flags the item
	// goes with, so that a command gaining the flag gains the item.
	on func(c *cobra.Command) bool
}

func (it item) applies(c *cobra.Command) bool {
	return !c.HasParent() || it.on(c)
}

// hasFlag is true for commands with any of the named flags.
func hasFlag(names ...string) func(*cobra.Command) bool {
	return func(c *cobra.Command) bool {
		for _, n := range names {
			if c.Flags().Lookup(n) != nil {
				return true
			}
		}
		return false
	}
}

// command is true for the command named name.
func command(name string) func(*cobra.Command) bool {
	return func(c *cobra.Command) bool { return c.Name() == name }
}

var environment = []item{
	{"DSFTP_DISCORD_TOKEN", "The Discord bot token. It takes precedence over the file of **--token-file**; no token anywhere means LAN discovery.", hasFlag("token-file")},
	{"DSFTP_DISCORD_API", "Default of **--discord-api**: the base URL (scheme and host) of a Discord-compatible API.", hasFlag("discord-api")},
	{"DSFTP_DISCOVERY", "Default of **--discovery** (discord, lan, off, or a comma list); the flag wins.", hasFlag("discovery")},
	{"SSH_AUTH_SOCK", "The ssh-agent whose keys are offered when logging in to peers, besides **--identity** and the per-run key.", hasFlag("identity")},
	{"XDG_CONFIG_HOME", "Where the host key and the Discord token file are kept (default ~/.config).", hasFlag("host-key", "token-file")},
	{"XDG_STATE_HOME", "Where the mount remembers which key held each peer name (default ~/.local/state).", command("mount")},
	{"NOTIFY_SOCKET", "Set by systemd for a Type=notify unit: the mount reports READY=1 once mounted and STOPPING=1 when it stops.", command("mount")},
}

var files = []item{
	{"~/.config/dsftp/host_key", "The share's SSH host key (ed25519, mode 0600), created on first use and kept across runs: peers know you by it. **--host-key** names another file.", hasFlag("host-key")},
	{"~/.config/dsftp/discord-token", "The Discord bot token, one line; dsftp warns when others can read it. **--token-file** names another file.", hasFlag("token-file")},
	{"~/.local/state/dsftp/known_names", "Which host key held each peer name (mode 0600, at most 1,024 names, a name unseen for 90 days is forgotten): a known name goes only to its key.", command("mount")},
	{"~/.ssh/known_hosts", "Host keys of **--peer** peers whose URL has no fingerprint=; **--known-hosts** names another file.", hasFlag("known-hosts")},
	{"DIR/.dsftpignore", "Paths of the shared directory not to share, in gitignore syntax (at most 1 MiB; re-read within a second of a change).", hasFlag("share-hidden")},
	{"/etc/fuse.conf", "Needs user_allow_other for **-o allow_other** or **allow_root** as a user other than root.", hasFlag("allow-other")},
}
