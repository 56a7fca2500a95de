package instance

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/peers/punch"
)

// Listed is one advert `dsftp peers` lists (one element of its --json
// array). The JSON names are a documented interface for scripts: add
// fields, never rename or drop one.
type Listed struct {
	Name        string   `json:"name"`
	Requested   string   `json:"requested_name"`
	Fingerprint string   `json:"fingerprint"`
	Addrs       []string `json:"addrs"`
	// Source is where the advert was found: discord or lan.
	Source string `json:"source"`
	// ClientOnly marks an instance that shares nothing (dsftp get, or
	// --no-share): its key may log in to the shares, it has no directory.
	ClientOnly bool `json:"client_only"`
	// LastSeen is when the advert was last posted (Discord) or heard
	// (LAN).
	LastSeen time.Time `json:"last_seen"`
	// Issued is when a Discord advert was posted; LAN adverts give
	// LastHeard instead (they are re-sent every interval).
	Issued     time.Time `json:"issued,omitzero"`
	LastHeard  time.Time `json:"last_heard,omitzero"`
	Expires    time.Time `json:"expires"`
	AgeSeconds int64     `json:"age_seconds"`
	AuthorID   string    `json:"author_id,omitempty"`
	AuthorName string    `json:"author_name,omitempty"`
	// Route says how members reach this one, from its advert: "direct",
	// "punched" (a QUIC path punched through its NAT or its IPv6
	// firewall; see UDP), "reverse via NAME,…" (through the members
	// holding its reverse connections; others get a relay through them),
	// "turn" (its QUIC endpoint on a TURN server's relayed address; see
	// Relay), several of them ("punched, reverse via NAME,…, turn"), or
	// "none".
	Route string `json:"route"`
	// UDP are the candidates of its QUIC path and NAT what STUN told it
	// of its router ("cone", "symmetric", "none", "unknown"; absent
	// without STUN).
	UDP []string `json:"udp,omitempty"`
	NAT string   `json:"nat,omitempty"`
	// Relay is its relayed QUIC address on a TURN server (--turn).
	Relay string `json:"relay,omitempty"`
	// Via are the fingerprints of the members holding its reverse
	// connections.
	Via []string `json:"via,omitempty"`
}

// List is `dsftp peers`' bring-up: it reads the Discord channel's history
// once (cfg.Discord) and asks the LAN and listens for wait (cfg.LAN),
// posting and announcing nothing, and returns the live peers and, apart from
// them, the client-only adverts (instances that share nothing), each
// sorted by name.
func List(ctx context.Context, cfg Config, wait time.Duration) (list, clients []Listed, err error) {
	var heard func() (list, clients []peers.Entry)
	if cfg.LAN != nil {
		// Listen first: adverts heard while Discord answers count.
		if heard, err = listenLAN(ctx, *cfg.LAN, wait, cfg.Err, cfg.Logger); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Discord != nil {
		infos, err := discord.List(ctx, *cfg.Discord)
		if err != nil {
			return nil, nil, fmt.Errorf("discord: %w", err)
		}
		list, clients = discordRows(infos, time.Now())
	}
	if heard != nil {
		l, c := heard()
		now := time.Now()
		list, clients = append(list, lanRows(l, false, now)...), append(clients, lanRows(c, true, now)...)
	}
	byName := func(a, b Listed) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Source, b.Source), strings.Compare(a.Fingerprint, b.Fingerprint))
	}
	slices.SortStableFunc(list, byName)
	slices.SortStableFunc(clients, byName)
	return list, clients, nil
}

// discordRows are the adverts read in the channel: peers, and apart from
// them the client-only adverts.
func discordRows(infos []discord.Info, now time.Time) (list, clients []Listed) {
	for _, p := range infos {
		row := Listed{
			Name: p.DisplayName, Requested: p.Name, Fingerprint: p.ID, Addrs: p.Addrs,
			Source: peers.SourceDiscord, Issued: p.Issued.UTC(), Expires: p.Expires.UTC(),
			AgeSeconds: int64(now.Sub(p.Issued).Seconds()), AuthorID: p.AuthorID, AuthorName: p.AuthorName,
			Via: p.Via, Route: "direct", ClientOnly: p.Client, LastSeen: p.Issued.UTC(),
			UDP: p.UDP, NAT: p.NAT, Relay: p.Relay,
		}
		if p.Unreachable {
			var routes []string
			if len(p.UDP) > 0 && p.NAT != "" && p.NAT != string(punch.NATSymmetric) || peers.HasPublicIPv6(p.UDP) {
				routes = append(routes, "punched")
			}
			if len(p.Via) > 0 {
				routes = append(routes, "reverse via "+strings.Join(namesOf(infos, p.Via), ","))
			}
			if p.Relay != "" {
				routes = append(routes, "turn")
			}
			row.Route = cmp.Or(strings.Join(routes, ", "), "none")
		}
		if p.Client {
			row.Route = "none"
			clients = append(clients, row)
		} else {
			list = append(list, row)
		}
	}
	return list, clients
}

// namesOf shows fingerprints as the display names of those adverts, or
// as themselves when they are not in the channel.
func namesOf(infos []discord.Info, fps []string) []string {
	var out []string
	for _, fp := range fps {
		name := fp
		for _, i := range infos {
			if i.ID == fp && i.DisplayName != "" {
				name = i.DisplayName
			}
		}
		out = append(out, name)
	}
	return out
}

// lanRows are the adverts heard on the LAN.
func lanRows(entries []peers.Entry, clientOnly bool, now time.Time) []Listed {
	var rows []Listed
	for _, e := range entries {
		rows = append(rows, Listed{
			Name: e.DisplayName, Requested: e.Name, Fingerprint: e.ID, Addrs: e.Addrs,
			Source: peers.SourceLAN, LastHeard: e.Updated.UTC(), LastSeen: e.Updated.UTC(), Expires: e.Expires.UTC(),
			AgeSeconds: int64(now.Sub(e.Updated).Seconds()), Route: "direct", ClientOnly: clientOnly,
		})
		if clientOnly {
			rows[len(rows)-1].Route = "none"
		}
	}
	return rows
}

// WriteTables prints the peers, then the clients (they share nothing, but
// their keys may read shares).
func WriteTables(out io.Writer, rows, clients []Listed) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(rows) > 0 {
		fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDRESSES\tROUTE\tAGE\tSOURCE")
		for _, p := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Fingerprint, strings.Join(p.Addrs, ","), p.Route,
				age(time.Duration(p.AgeSeconds)*time.Second), source(p))
		}
	}
	if len(clients) > 0 {
		if len(rows) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "CLIENT\tFINGERPRINT\tAGE\tSOURCE")
		for _, p := range clients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Fingerprint,
				age(time.Duration(p.AgeSeconds)*time.Second), source(p))
		}
	}
	return tw.Flush()
}

// source is the SOURCE column: where the advert was found, and by whom.
func source(p Listed) string {
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
