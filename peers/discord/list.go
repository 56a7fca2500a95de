package discord

import (
	"context"
	"slices"
	"strings"

	"github.com/dsftp/dsftp/peers"
)

// List reads the channel's history once and returns the live, verified
// adverts (client-only ones with Info.Client set), without connecting to the gateway or posting anything. Only
// Token, APIBase, Guild, Channel, AllowUsers, Logger and RequestTimeout of
// cfg are used.
func List(ctx context.Context, cfg Config) ([]Info, error) {
	cfg.setDefaults()
	s, err := newSession(cfg.Token, cfg.APIBase)
	if err != nil {
		return nil, err
	}
	t, err := resolve(ctx, s, cfg.RequestTimeout, cfg.APIBase, cfg.Guild, cfg.Channel)
	if err != nil {
		return nil, err
	}
	cfg.Registry = peers.NewRegistry("")
	r := newReceiver(t, cfg, cfg.Logger, "")
	if err := r.catchUp(ctx, s); err != nil {
		return nil, err
	}
	out := r.list(r.now())
	for i := range out {
		if e, ok := cfg.Registry.ByID(out[i].ID); ok {
			out[i].DisplayName = e.DisplayName
		} else if out[i].Client {
			// Clients claim no unique name; show the cleaned one.
			out[i].DisplayName = peers.SanitizeName(out[i].Name)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.DisplayName, b.DisplayName) })
	return out, nil
}
