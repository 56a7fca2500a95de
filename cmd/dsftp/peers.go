package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsftp/dsftp/peers/discord"
)

func init() {
	subcommands = append(subcommands, newPeersCmd)
}

// peerJSON is one line of `dsftp peers --json`.
type peerJSON struct {
	Name        string    `json:"name"`
	Requested   string    `json:"requested_name"`
	Fingerprint string    `json:"fingerprint"`
	Addrs       []string  `json:"addrs"`
	Issued      time.Time `json:"issued"`
	Expires     time.Time `json:"expires"`
	AgeSeconds  int64     `json:"age_seconds"`
	AuthorID    string    `json:"author_id"`
	AuthorName  string    `json:"author_name"`
}

func newPeersCmd(g *globals) *cobra.Command {
	var f discoveryFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the live peers advertised in the Discord channel, then exit",
		Long: `Read the Discord channel's recent history once and list every live, verified
advert: the name a mount shows, the host key fingerprint, the addresses, the
advert's age and the Discord user that posted it. Nothing is posted.

The bot token comes from $DSFTP_DISCORD_TOKEN or --token-file.`,
		Example: `  dsftp peers
  dsftp peers --channel dsftp-work --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			log := slog.Default()
			tok, ok, err := f.token(log)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no Discord bot token: set %s or write it to %s (see README: Discovery through Discord)", envDiscordToken, defaultTokenFile())
			}
			list, err := discord.List(cmd.Context(), f.config(tok, log))
			if err != nil {
				return fmt.Errorf("discord: %w", err)
			}
			now := time.Now()
			out := cmd.OutOrStdout()
			if asJSON {
				rows := make([]peerJSON, 0, len(list))
				for _, p := range list {
					rows = append(rows, peerJSON{
						Name: p.DisplayName, Requested: p.Name, Fingerprint: p.ID, Addrs: p.Addrs,
						Issued: p.Issued.UTC(), Expires: p.Expires.UTC(), AgeSeconds: int64(now.Sub(p.Issued).Seconds()),
						AuthorID: p.AuthorID, AuthorName: p.AuthorName,
					})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			if len(list) == 0 {
				fmt.Fprintf(os.Stderr, "no live peers in #%s\n", strings.TrimPrefix(f.channel, "#"))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDRESSES\tAGE\tAUTHOR")
			for _, p := range list {
				author := p.AuthorName
				if author == "" {
					author = p.AuthorID
				} else {
					author += " (" + p.AuthorID + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.DisplayName, p.ID, strings.Join(p.Addrs, ","), age(now.Sub(p.Issued)), author)
			}
			return tw.Flush()
		},
	}
	f.register(cmd.Flags(), false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	return cmd
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
