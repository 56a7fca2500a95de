package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dsftp/dsftp/cmd/internal/instance"
	"github.com/dsftp/dsftp/peers/discord"
	"github.com/dsftp/dsftp/peers/lan"
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
	// Discord token is configured; the instance then says so.
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

// value is --discovery, or else $DSFTP_DISCOVERY, or "" for the default.
func (f *lanFlags) value() string {
	if v := strings.TrimSpace(f.discovery); v != "" {
		return v
	}
	return strings.TrimSpace(os.Getenv(envDiscovery))
}

// parse checks the flags and parses the --discovery value; explicit is
// false when it is empty (the default applies).
func (f *lanFlags) parse() (m instance.Methods, explicit bool, err error) {
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
	if m, err = instance.ParseMethods(v); err != nil {
		return m, false, usageError{err}
	}
	return m, true, nil
}

// resolve decides the methods: the parsed --discovery, or by default
// discord if tokenConfigured, else lan (and then f.defaulted is set).
func (f *lanFlags) resolve(tokenConfigured bool) (instance.Methods, error) {
	m, explicit, err := f.parse()
	if err != nil || explicit {
		return m, err
	}
	if tokenConfigured {
		m.Discord = true
	} else {
		m.LAN = true
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
	if explicit && !m.Discord {
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
	if m.Discord && tok == "" {
		if df.noDiscord {
			return "", false, usageError{errors.New("--discovery discord and --no-discord contradict each other; drop one")}
		}
		return "", false, fmt.Errorf("--discovery discord needs a Discord bot token: set %s or write it to %s (see \"Discovery through Discord\" in the README)", envDiscordToken, discord.DefaultTokenFile())
	}
	if !m.Discord {
		tok = ""
	}
	return tok, m.LAN, nil
}

// advertName is the name adverts carry: --name, or the OS user name.
func advertName(df *discoveryFlags) string {
	if df.name != "" {
		return df.name
	}
	return instance.DefaultName()
}

// discoveryConfig applies --discovery and the Discord flags to cfg: the
// Discord config when Discord is chosen, the LAN config when LAN is, and
// the name adverts carry.
func discoveryConfig(cfg *instance.Config, df *discoveryFlags, lf *lanFlags, log *slog.Logger) error {
	tok, useLAN, err := lf.choose(df, log)
	if err != nil {
		return err
	}
	cfg.Name = advertName(df)
	if tok != "" {
		dc := df.config(tok, log)
		cfg.Discord = &dc
	}
	if useLAN {
		cfg.LAN = &instance.LAN{Port: lf.port, Interfaces: lf.ifaces, Defaulted: lf.defaulted}
	}
	return nil
}
