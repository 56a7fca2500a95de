package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/peers/lan"
)

func init() {
	subcommands = append(subcommands, newPeersCmd)
}

// peerJSON is one line of `dsftp peers --json`.
type peerJSON struct {
	Name        string   `json:"name"`
	Requested   string   `json:"requested_name"`
	Fingerprint string   `json:"fingerprint"`
	Addrs       []string `json:"addrs"`
	// Source is where the advert was found: discord or lan.
	Source string `json:"source"`
	// Issued is when a Discord advert was posted; LAN adverts give
	// LastHeard instead (they are re-sent every interval).
	Issued     time.Time `json:"issued,omitzero"`
	LastHeard  time.Time `json:"last_heard,omitzero"`
	Expires    time.Time `json:"expires"`
	AgeSeconds int64     `json:"age_seconds"`
	AuthorID   string    `json:"author_id,omitempty"`
	AuthorName string    `json:"author_name,omitempty"`
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
	tok, useLAN, err := lf.choose(f, log)
	if err != nil {
		return err
	}
	if tok == "" && !useLAN {
		return usageError{errors.New("--discovery off: nothing to list; use --discovery discord or lan")}
	}
	if lf.defaulted {
		fmt.Fprintln(os.Stderr, peersLANNotice)
	}
	ctx := cmd.Context()
	var heard func() (list, clients []peers.Entry)
	if useLAN {
		// Listen first: adverts heard while Discord answers count.
		lan := instance.LAN{Port: lf.port, Interfaces: lf.ifaces}
		if heard, err = instance.ListenLAN(ctx, lan, wait, os.Stderr, log); err != nil {
			return err
		}
	}
	// Client-only adverts (dsftp get, --no-share) are no peers: they go in
	// a table of their own, and not into --json.
	var rows, clients []peerJSON
	if tok != "" {
		list, err := discord.List(ctx, f.config(tok, log))
		if err != nil {
			return fmt.Errorf("discord: %w", err)
		}
		rows, clients = discordRows(list, time.Now())
	}
	if heard != nil {
		list, cl := heard()
		now := time.Now()
		rows, clients = append(rows, lanRows(list, now)...), append(clients, lanRows(cl, now)...)
	}
	byName := func(a, b peerJSON) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Source, b.Source), strings.Compare(a.Fingerprint, b.Fingerprint))
	}
	slices.SortStableFunc(rows, byName)
	slices.SortStableFunc(clients, byName)
	out := cmd.OutOrStdout()
	if asJSON {
		if rows == nil {
			rows = []peerJSON{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		var where []string
		if tok != "" {
			where = append(where, "in #"+strings.TrimPrefix(f.channel, "#"))
		}
		if useLAN {
			where = append(where, fmt.Sprintf("on the local network (UDP port %d, listened %v)", lf.port, wait))
		}
		fmt.Fprintf(os.Stderr, "no live peers %s\n", strings.Join(where, " or "))
		if len(clients) == 0 {
			return nil
		}
	}
	return writeTables(out, rows, clients)
}

// discordRows are the rows of the adverts read in the channel: peers, and
// apart from them the client-only adverts.
func discordRows(list []discord.Info, now time.Time) (rows, clients []peerJSON) {
	for _, p := range list {
		row := peerJSON{
			Name: p.DisplayName, Requested: p.Name, Fingerprint: p.ID, Addrs: p.Addrs,
			Source: peers.SourceDiscord, Issued: p.Issued.UTC(), Expires: p.Expires.UTC(),
			AgeSeconds: int64(now.Sub(p.Issued).Seconds()), AuthorID: p.AuthorID, AuthorName: p.AuthorName,
		}
		if p.Client {
			clients = append(clients, row)
		} else {
			rows = append(rows, row)
		}
	}
	return rows, clients
}

// lanRows are the rows of the adverts heard on the LAN.
func lanRows(list []peers.Entry, now time.Time) []peerJSON {
	var rows []peerJSON
	for _, e := range list {
		rows = append(rows, peerJSON{
			Name: e.DisplayName, Requested: e.Name, Fingerprint: e.ID, Addrs: e.Addrs,
			Source: peers.SourceLAN, LastHeard: e.Updated.UTC(), Expires: e.Expires.UTC(),
			AgeSeconds: int64(now.Sub(e.Updated).Seconds()),
		})
	}
	return rows
}

// writeTables prints the peers, then the clients (they share nothing, but
// their keys may read shares).
func writeTables(out io.Writer, rows, clients []peerJSON) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(rows) > 0 {
		fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDRESSES\tAGE\tSOURCE")
		for _, p := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Fingerprint, strings.Join(p.Addrs, ","),
				age(time.Duration(p.AgeSeconds)*time.Second), p.source())
		}
	}
	if len(clients) > 0 {
		if len(rows) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "CLIENT\tFINGERPRINT\tAGE\tSOURCE")
		for _, p := range clients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Fingerprint,
				age(time.Duration(p.AgeSeconds)*time.Second), p.source())
		}
	}
	return tw.Flush()
}

// source is the SOURCE column: where the advert was found, and by whom.
func (p peerJSON) source() string {
	switch {
	case p.AuthorName != "":
		return p.Source + " by " + p.AuthorName + " (" + p.AuthorID + ")"
	case p.AuthorID != "":
		return p.Source + " by " + p.AuthorID
	}
	return p.Source
}

// age prints a duration the way people read it: 45s, 12m, 3h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	default:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
}
