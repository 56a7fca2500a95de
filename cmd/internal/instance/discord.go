package instance

import (
	"context"
	"fmt"
	"strings"

	"github.com/dsftp/dsftp/peers/discord"
)

// startDiscord starts Discord discovery advertising the instance, feeding
// its registry, and returns once the first advert is posted.
func (in *Instance) startDiscord() (*discord.Discovery, error) {
	cfg := *in.cfg.Discord
	me := in.self
	cfg.Signer, cfg.ClientKeys, cfg.Registry = me.signer, me.clientKeys, in.Registry
	cfg.Addrs, cfg.ClientOnly = me.addrs(), me.clientOnly()
	if u := in.udp.Load(); u != nil {
		cfg.UDP, cfg.NAT = u.strings(), string(u.nat)
	}
	cfg.Relay = in.relayAddr()
	d, err := discord.Start(in.ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	in.discord.Store(d)
	in.publishRoutes()
	in.publishUDP()
	in.publishRelay()
	channel := "#" + strings.TrimPrefix(cfg.Channel, "#")
	if me.clientOnly() {
		in.log.Info("advertising our client key in Discord (sharing nothing)", "channel", channel, "name", cfg.Name)
	} else {
		in.log.Info("advertising in Discord", "channel", channel, "name", cfg.Name, "addrs", cfg.Addrs)
	}
	return d, nil
}

// runDiscord runs d until ctx ends (the advert is deleted) or a fatal
// error stops it, which then stops the instance.
func runDiscord(ctx context.Context, d *discord.Discovery) error {
	if err := d.Run(ctx); err != nil {
		return fmt.Errorf("discord: %w", err)
	}
	return nil
}
