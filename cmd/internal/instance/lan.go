package instance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/peers/lan"
)

// startLAN announces the instance on the local network under its name,
// with the client keys it logs in to others with, and feeds verified
// adverts into its registry. It returns once the sockets are open. LAN
// adverts carry the share's local addresses, kept current by the LAN's
// own address watch; the addresses seen from outside (UPnP) are the
// Discord advert's business.
func (in *Instance) startLAN() error {
	me, cfg, name := in.self, in.cfg.LAN, in.cfg.Name
	var codec *lan.AdvertCodec
	var setAddrs func()
	if me.clientOnly() {
		codec = lan.NewClientCodec(me.signer, name, me.clientKeys)
	} else {
		codec = lan.NewAdvertCodec(me.signer, name, "dsftp", me.clientKeys)
		codec.SetAddrs(me.addrs())
		setAddrs = func() { codec.SetAddrs(me.addrs()) }
	}
	d, err := lan.New(lan.Options{
		Codec: codec, Registry: in.Registry, SelfID: me.id(),
		Port: cfg.Port, Interfaces: cfg.Interfaces,
		OnAddrsChange: setAddrs, Logger: in.log,
	})
	if err != nil {
		return err
	}
	if err := d.Listen(); err != nil {
		return err
	}
	in.lanNotice()
	if me.clientOnly() {
		in.log.Info("announcing our client key on the LAN (sharing nothing)", "name", name, "port", d.Port())
	} else {
		in.log.Info("announcing on the LAN", "name", name, "port", d.Port())
	}
	in.g.Go(func() error {
		if err := d.Run(in.ctx); err != nil {
			in.log.Error("LAN discovery stopped", "err", err)
		}
		return nil
	})
	return nil
}

// LANNotice is printed when LAN discovery is chosen by default.
const LANNotice = "no Discord token configured, so peers are found on the local network (--discovery lan) and anyone on it can read your share; to use a Discord channel instead, set " + discord.TokenEnv + " (see \"Discovery through Discord\" in the README)"

// LANClientNotice is LANNotice for a process that shares nothing.
const LANClientNotice = "no Discord token configured, so peers are found on the local network (--discovery lan); to use a Discord channel instead, set " + discord.TokenEnv + " (see \"Discovery through Discord\" in the README)"

// lanNotice warns the user, once, that LAN discovery lets anyone on the
// network read the share, and why it is on. A process that shares
// nothing (get, --no-share) exposes nothing: the log says why it looks on
// the LAN, the terminal stays quiet.
func (in *Instance) lanNotice() {
	cfg := in.cfg.LAN
	switch {
	case cfg.Defaulted && in.self.clientOnly():
		in.log.Info(LANClientNotice)
	case cfg.Defaulted:
		in.log.Warn(LANNotice)
	case in.self.clientOnly():
		// Nothing of ours can be read; our key only reaches the others.
	default:
		where := "this network"
		if len(cfg.Interfaces) > 0 {
			where = "the network of " + strings.Join(cfg.Interfaces, ", ")
		}
		in.log.Warn("LAN discovery is on: anyone on " + where + " can read this share")
	}
}

// listenLAN asks the members on the LAN to announce (lan.Query: no
// advert, no leaving message, the peers never learn who we are) and
// listens for their adverts until wait has passed or ctx ends. It returns once the sockets are open; heard then blocks
// until the listening is over and returns the verified peers heard, and
// apart from them the client-only adverts (instances that share nothing).
func listenLAN(ctx context.Context, cfg LAN, wait time.Duration, errOut io.Writer, log *slog.Logger) (heard func() (list, clients []peers.Entry), err error) {
	reg := peers.NewRegistry("")
	d, err := lan.New(lan.Options{
		Codec: lan.NewVerifyCodec(), Registry: reg, ListenOnly: true, Query: true,
		Port: cfg.Port, Interfaces: cfg.Interfaces, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := d.Listen(); err != nil {
		return nil, err
	}
	// A person sees the line; scripts and tests wait for the record
	// before starting peers.
	fmt.Fprintf(errOut, "dsftp: listening for LAN adverts on UDP port %d for %v (Ctrl-C stops early)\n", d.Port(), wait)
	log.Info("listening for LAN adverts", "port", d.Port(), "wait", wait)
	lctx, cancel := context.WithTimeout(ctx, wait)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		if err := d.Run(lctx); err != nil {
			log.Error("LAN listening stopped", "err", err)
		}
	}()
	return func() ([]peers.Entry, []peers.Entry) {
		<-done
		return reg.List(), reg.Clients()
	}, nil
}
