package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/dsftp/dsftp/peers/lan"
	"github.com/spf13/pflag"
)

// Discovery methods, as --discovery names them.
const (
	discoveryDiscord = "discord"
	discoveryLAN     = "lan"
	discoveryOff     = "off"
)

// lanFlags choose how peers are found (--discovery) and tune LAN
// discovery. Every command that shares or mounts has them.
type lanFlags struct {
	// discovery is the raw --discovery value; "" means the default.
	discovery string
	// port is the UDP port of LAN adverts.
	port int
	// ifaces limits LAN discovery to these network interfaces.
	ifaces []string
}

// register adds the flags to fs.
func (f *lanFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.discovery, "discovery", "",
		"how to find peers: discord, lan, off, or a comma list such as discord,lan "+
			"(default: discord when a Discord token is configured, otherwise lan). "+
			"With lan, anyone on this network can read your share")
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

// discordTokenConfigured reports whether a Discord token is set up, which
// makes discord the default method. The Discord wiring may replace it with
// a check that also knows --token-file.
var discordTokenConfigured = func() bool {
	return strings.TrimSpace(os.Getenv("DSFTP_DISCORD_TOKEN")) != ""
}

// lanNotice is printed when LAN discovery is chosen by default.
const lanNotice = "dsftp: no Discord token configured, so peers are found on the local network (--discovery lan) and anyone on it can read your share; to use a Discord channel instead, set DSFTP_DISCORD_TOKEN (see \"Discovery through Discord\" in the README)"

// resolve checks the flags and decides the methods. When --discovery is
// not given it is discord if tokenConfigured, else lan, and then the
// one-line notice goes to notice.
func (f *lanFlags) resolve(tokenConfigured bool, notice io.Writer) (discoveryMethods, error) {
	var m discoveryMethods
	if f.port < 1 || f.port > 65535 {
		return m, usageError{fmt.Errorf("--lan-port %d: want a UDP port from 1 to 65535", f.port)}
	}
	for _, name := range f.ifaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return m, usageError{fmt.Errorf("--lan-interface %q: no such network interface (list them with `ip link`)", name)}
		}
	}
	if strings.TrimSpace(f.discovery) == "" {
		if tokenConfigured {
			m.discord = true
		} else {
			m.lan = true
			if notice != nil {
				fmt.Fprintln(notice, lanNotice)
			}
		}
		return m, nil
	}
	off := false
	for _, w := range strings.Split(f.discovery, ",") {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case discoveryDiscord:
			m.discord = true
		case discoveryLAN:
			m.lan = true
		case discoveryOff:
			off = true
		default:
			return discoveryMethods{}, usageError{fmt.Errorf("--discovery %q: want discord, lan or off, or a comma list such as discord,lan", f.discovery)}
		}
	}
	if off && (m.discord || m.lan) {
		return discoveryMethods{}, usageError{errors.New("--discovery: off cannot be combined with other methods")}
	}
	return m, nil
}
