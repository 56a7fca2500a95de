package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/peers"
	"github.com/dsftp/dsftp/peers/lan"
)

// Discovery methods, as --discovery names them.
const (
	discoveryDiscord = "discord"
	discoveryLAN     = "lan"
	discoveryOff     = "off"
)

// envDiscovery, when set, is the default of --discovery.
const envDiscovery = "DSFTP_DISCOVERY"

// lanFlags choose how peers are found (--discovery) and tune LAN
// discovery. Every command that shares or mounts has them.
type lanFlags struct {
	// discovery is the raw --discovery value; "" means $DSFTP_DISCOVERY,
	// or else the default.
	discovery string
	// port is the UDP port of LAN adverts.
	port int
	// ifaces limits LAN discovery to these network interfaces.
	ifaces []string
	// defaulted records that LAN discovery was chosen only because no
	// Discord token is configured; startLAN then prints lanNotice.
	defaulted bool
}

// register adds the flags to fs.
func (f *lanFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.discovery, "discovery", "",
		"how to find peers: discord, lan, off, or a comma list such as discord,lan "+
			"(default: $"+envDiscovery+", else discord when a Discord token is configured, otherwise lan). "+
			"With lan, anyone on this network can read your share, if this command shares one")
	fs.IntVar(&f.port, "lan-port", lan.Port, "UDP port for LAN discovery; every peer on the network must use the same one")
	fs.StringSliceVar(&f.ifaces, "lan-interface", nil,
		"network interface for LAN discovery, e.g. eth0 or lo (repeatable; default: every interface that is up)")
}

// discoveryMethods is the resolved --discovery.
type discoveryMethods struct {
	discord, lan bool
}

// String renders the methods as --discovery would take them.
func (m discoveryMethods) String() string {
	var s []string
	if m.discord {
		s = append(s, discoveryDiscord)
	}
	if m.lan {
		s = append(s, discoveryLAN)
	}
	if len(s) == 0 {
		return discoveryOff
	}
	return strings.Join(s, ",")
}

// lanNotice is printed when LAN discovery is chosen by default.
const lanNotice = "dsftp: no Discord token configured, so peers are found on the local network (--discovery lan) and anyone on it can read your share; to use a Discord channel instead, set " + envDiscordToken + " (see \"Discovery through Discord\" in the README)"

// lanClientNotice is lanNotice for a process that shares nothing.
const lanClientNotice = "dsftp: no Discord token configured, so peers are found on the local network (--discovery lan); to use a Discord channel instead, set " + envDiscordToken + " (see \"Discovery through Discord\" in the README)"

// value is --discovery, or else $DSFTP_DISCOVERY, or "" for the default.
func (f *lanFlags) value() string {
	if v := strings.TrimSpace(f.discovery); v != "" {
		return v
	}
	return strings.TrimSpace(os.Getenv(envDiscovery))
}

// parse checks the flags and parses the --discovery value; explicit is
// false when it is empty (the default applies).
func (f *lanFlags) parse() (m discoveryMethods, explicit bool, err error) {
	if f.port < 1 || f.port > 65535 {
		return m, false, usageError{fmt.Errorf("--lan-port %d: want a UDP port from 1 to 65535", f.port)}
	}
	for _, name := range f.ifaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return m, false, usageError{fmt.Errorf("--lan-interface %q: no such network interface (list them with `ip link`)", name)}
		}
	}
	v := f.value()
	if v == "" {
		return m, false, nil
	}
	off := false
	for _, w := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case discoveryDiscord:
			m.discord = true
		case discoveryLAN:
			m.lan = true
		case discoveryOff:
			off = true
		default:
			return discoveryMethods{}, false, usageError{fmt.Errorf("--discovery %q: want discord, lan or off, or a comma list such as discord,lan", v)}
		}
	}
	if off && (m.discord || m.lan) {
		return discoveryMethods{}, false, usageError{errors.New("--discovery: off cannot be combined with other methods")}
	}
	return m, true, nil
}

// resolve decides the methods: the parsed --discovery, or by default
// discord if tokenConfigured, else lan (and then f.defaulted is set).
func (f *lanFlags) resolve(tokenConfigured bool) (discoveryMethods, error) {
	m, explicit, err := f.parse()
	if err != nil || explicit {
		return m, err
	}
	if tokenConfigured {
		m.discord = true
	} else {
		m.lan = true
		f.defaulted = true
	}
	return m, nil
}

// choose applies --discovery to the Discord flags: it returns the Discord
// token to use ("" when Discord is not chosen) and whether LAN discovery
// is on. It replaces discoveryFlags.prepare in the commands (share, mount,
// shell, get, peers). A command that shares nothing (--no-share, get)
// still advertises, with a client-only advert, so the same rules apply.
func (f *lanFlags) choose(df *discoveryFlags, log *slog.Logger) (tok string, useLAN bool, err error) {
	m, explicit, err := f.parse()
	if err != nil {
		return "", false, err
	}
	if explicit && !m.discord {
		// Discord is not wanted: check its flags, never its token.
		if err := df.validate(); err != nil {
			return "", false, err
		}
	} else if tok, err = df.prepare(log); err != nil {
		return "", false, err
	}
	if m, err = f.resolve(tok != ""); err != nil {
		return "", false, err
	}
	if m.discord && tok == "" {
		if df.noDiscord {
			return "", false, usageError{errors.New("--discovery discord and --no-discord contradict each other; drop one")}
		}
		return "", false, fmt.Errorf("--discovery discord needs a Discord bot token: set %s or write it to %s (see \"Discovery through Discord\" in the README)", envDiscordToken, defaultTokenFile())
	}
	if !m.discord {
		tok = ""
	}
	return tok, m.lan, nil
}

// startLAN announces me (a share, or a client-only advert) on the local
// network under name, with the client keys this instance logs in to
// others with, and feeds verified adverts into reg (which the share
// consults about client keys). It returns once the sockets are open.
// Discovery stops when ctx ends; wait returns after the last (leaving)
// advert went out. LAN adverts carry the share's local addresses, kept
// current by the LAN's own address watch; the addresses seen from outside
// (UPnP) are the Discord advert's business.
func startLAN(ctx context.Context, f *lanFlags, reg *peers.Registry, me self, name string, log *slog.Logger) (wait func(), err error) {
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
		Codec: codec, Registry: reg, SelfID: me.id(),
		Port: f.port, Interfaces: f.ifaces,
		OnAddrsChange: setAddrs, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := d.Listen(); err != nil {
		return nil, err
	}
	switch {
	case me.clientOnly() && f.defaulted:
		fmt.Fprintln(os.Stderr, lanClientNotice)
	case me.clientOnly():
		// Nothing of ours can be read; our key only reaches the others.
	case f.defaulted:
		fmt.Fprintln(os.Stderr, lanNotice)
	default:
		where := "this network"
		if len(f.ifaces) > 0 {
			where = "the network of " + strings.Join(f.ifaces, ", ")
		}
		log.Warn("LAN discovery is on: anyone on " + where + " can read this share")
	}
	if me.clientOnly() {
		log.Info("announcing our client key on the LAN (sharing nothing)", "name", name, "port", d.Port())
	} else {
		log.Info("announcing on the LAN", "name", name, "port", d.Port())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			log.Error("LAN discovery stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}

// advertName is the name adverts carry: --name, or the OS user name.
func advertName(df *discoveryFlags) string {
	if df.name != "" {
		return df.name
	}
	return defaultName()
}

// listenLAN listens for LAN adverts without sending anything (no advert,
// no leaving message: the peers never learn of us) until wait has passed
// or ctx ends. It returns once the sockets are open; heard then blocks
// until the listening is over and returns the verified peers heard, and
// apart from them the client-only adverts (instances that share nothing).
func listenLAN(ctx context.Context, f *lanFlags, wait time.Duration, log *slog.Logger) (heard func() (list, clients []peers.Entry), err error) {
	reg := peers.NewRegistry("")
	d, err := lan.New(lan.Options{
		Codec: lan.NewVerifyCodec(), Registry: reg, ListenOnly: true,
		Port: f.port, Interfaces: f.ifaces, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := d.Listen(); err != nil {
		return nil, err
	}
	// Scripts and tests wait for this line before starting peers.
	fmt.Fprintf(os.Stderr, "dsftp: listening for LAN adverts on UDP port %d for %v (Ctrl-C stops early)\n", d.Port(), wait)
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
