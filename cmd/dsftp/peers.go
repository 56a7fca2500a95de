package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/lan"
)

func init() {
	subcommands = append(subcommands, newPeersCmd)
}

// defaultPeersWait is how long `dsftp peers` listens on the LAN: one
// announcement interval plus its jitter, so every live peer announces at
// least once while we listen (we send nothing that would make them answer
// sooner).
const defaultPeersWait = lan.DefaultInterval + lan.DefaultInterval/10

// peersLANNotice is printed when LAN is chosen by default.
const peersLANNotice = "dsftp: no Discord token configured, so listing the peers on the local network (--discovery lan)"

func newPeersCmd(g *globals) *cobra.Command {
	var f discoveryFlags
	var lf lanFlags
	var asJSON bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the live peers (Discord channel or local network), then exit",
		Long: `List every live, verified advert: the name a mount shows, the host key
fingerprint, the addresses, the advert's age and its source. Nothing is
posted or announced. Client-only adverts (dsftp get, or mount and shell
with --no-share: they share nothing, but their keys may read the shares)
follow in a CLIENT table of their own; --json lists only the peers.

With Discord (--discovery discord, the default when a bot token is
configured) the channel's recent history is read once; SOURCE names the
Discord user that posted the advert. The bot token comes from
$DSFTP_DISCORD_TOKEN or --token-file.

With LAN discovery (--discovery lan, the default without a token) dsftp
only listens on the LAN port for --wait (default 33s: one announcement
interval plus jitter, so every live peer is heard at least once); Ctrl-C
stops early and prints what was heard. AGE is then the time since the
peer was last heard. --discovery discord,lan does both.`,
		Example: `  dsftp peers
  dsftp peers --channel dsftp-work --json
  dsftp peers --discovery lan --wait 10s --lan-interface eth0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPeers(cmd, &f, &lf, asJSON, wait)
		},
	}
	f.register(cmd.Flags(), false)
	lf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	cmd.Flags().DurationVar(&wait, "wait", defaultPeersWait,
		"how long to listen for LAN adverts (peers announce every "+lan.DefaultInterval.String()+"; a shorter wait may miss some)")
	return cmd
}

// runPeers lists the live peers: from the channel's history, and heard on
// the LAN within wait.
func runPeers(cmd *cobra.Command, f *discoveryFlags, lf *lanFlags, asJSON bool, wait time.Duration) error {
	if wait <= 0 {
		return usageError{fmt.Errorf("--wait %v: want a positive duration such as 10s", wait)}
	}
	log := slog.Default()
	var cfg instance.Config
	if err := discoveryConfig(&cfg, f, lf, log); err != nil {
		return err
	}
	if cfg.Discord == nil && cfg.LAN == nil {
		return usageError{errors.New("--discovery off: nothing to list; use --discovery discord or lan")}
	}
	if lf.defaulted {
		fmt.Fprintln(os.Stderr, peersLANNotice)
	}
	cfg.Err, cfg.Logger = os.Stderr, log
	rows, clients, err := instance.List(cmd.Context(), cfg, wait)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(append([]instance.Listed{}, rows...))
	}
	if len(rows) == 0 {
		var where []string
		if cfg.Discord != nil {
			where = append(where, "in #"+strings.TrimPrefix(f.channel, "#"))
		}
		if cfg.LAN != nil {
			where = append(where, fmt.Sprintf("on the local network (UDP port %d, listened %v)", lf.port, wait))
		}
		fmt.Fprintf(os.Stderr, "no live peers %s\n", strings.Join(where, " or "))
		if len(clients) == 0 {
			return nil
		}
	}
	return instance.WriteTables(out, rows, clients)
}
