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

// defaultPeersWait is how long `dsftp peers` listens on the LAN. Members
// answer its query within lan.Options.MinGap (0.1 s); the query is
// repeated after lan.QueryRetry in case a datagram was lost, and the rest
// is slack for a busy machine.
const defaultPeersWait = 2 * time.Second

// minPeersWait is the shortest --wait: the query's retry and its answers
// must fit, or a live member could go unlisted.
const minPeersWait = 1 * time.Second

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
follow in a CLIENT table of their own; --json marks them client_only.

With Discord (--discovery discord, the default when a bot token is
configured) the channel's recent history is read once; SOURCE names the
Discord user that posted the advert. The bot token comes from
$DSFTP_DISCORD_TOKEN or --token-file.

With LAN discovery (--discovery lan, the default without a token) dsftp
sends a query on the LAN port, which every live member answers at once
with its advert, and listens for --wait (default 2s, at least 1s); Ctrl-C
stops early and prints what was heard. The query carries nothing about
us: nobody learns who asked. Members older than this query are heard only
when they announce, every 30s: use --wait 33s for them. AGE is then the
time since the peer was last heard. --discovery discord,lan does both.

--json prints one array, sorted: the peers by name, then the client-only
adverts by name. Each element has name, fingerprint (the host key's, the
peer's ID), addrs, route (direct, "reverse via NAME,...", or none),
source (discord or lan), client_only, last_seen (RFC 3339: when the
advert was posted, or last heard on the LAN), expires, age_seconds, and
requested_name, issued, last_heard, author_id, author_name, via where
they apply. Fields may be added, never renamed or dropped.`,
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
		"how long to listen for answers on the LAN (at least "+minPeersWait.String()+"; members older than the query only announce every "+lan.DefaultInterval.String()+")")
	return cmd
}

// runPeers lists the live peers: from the channel's history, and heard on
// the LAN within wait.
func runPeers(cmd *cobra.Command, f *discoveryFlags, lf *lanFlags, asJSON bool, wait time.Duration) error {
	if wait < minPeersWait {
		return usageError{fmt.Errorf("--wait %v: want at least %v (members answer within a second; longer waits hear members that do not answer queries)", wait, minPeersWait)}
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
		return enc.Encode(append(append([]instance.Listed{}, rows...), clients...))
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
