// Package reach is the one address policy of a share: which addresses it
// advertises to its peers, each with the reason it was chosen (Select,
// kept current with the UPnP port mapping by Track, for Discord adverts and
// the start-up output), and which addresses clients on this machine or
// network can dial (Local, for LAN adverts and the banner).
//
// Peers dial all of them in parallel (that is the mount's business), so the
// list favours reach over brevity: the router's external address when UPnP
// mapped the port, every LAN IPv4 address (peers behind the same router;
// hairpin NAT through the external address often fails), every global IPv6
// address (no NAT needed), and whatever the user gave with --advertise.
package reach

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Kind says where an address comes from. Lower kinds are listed first.
type Kind int

const (
	Manual   Kind = iota // --advertise HOST:PORT
	External             // the router's public address, mapped with UPnP or NAT-PMP
	IPv6                 // a global IPv6 address of this computer
	LAN                  // an IPv4 address of this computer
)

func (k Kind) String() string {
	switch k {
	case Manual:
		return "manual"
	case External:
		return "upnp"
	case IPv6:
		return "ipv6"
	case LAN:
		return "lan"
	}
	return "kind" + strconv.Itoa(int(k))
}

// Addr is one advertised address.
type Addr struct {
	// Addr is what peers dial: "host:port", IPv6 in brackets.
	Addr string
	// Kind is where it comes from.
	Kind Kind
	// Reason explains the choice in a few words, for display.
	Reason string
}

func (a Addr) String() string { return a.Addr + " (" + a.Reason + ")" }

// Interface is one address of a local network interface.
type Interface struct {
	Name string
	Addr netip.Addr
}

// Options are the inputs of Select.
type Options struct {
	// Port is the share's TCP listening port.
	Port uint16
	// External is the public address:port the router forwards to Port;
	// invalid when UPnP mapped nothing.
	External netip.AddrPort
	// Router is the LAN address of the router that maps External, for the
	// reason text.
	Router string
	// Advertise are --advertise HOST:PORT values, already checked with
	// ParseAdvertise.
	Advertise []string
	// Bind is the address the share listens on. When it is a specific
	// address (not 0.0.0.0 or ::), it is the only local address advertised.
	Bind netip.Addr
	// NoLocal leaves out this computer's own addresses (LAN and IPv6).
	NoLocal bool
	// Interfaces lists the local addresses. Nil means LocalInterfaces.
	Interfaces func() ([]Interface, error)
}

// Select returns the advertised addresses: --advertise values first, in
// the order given, then the external address, then global IPv6 and LAN IPv4
// addresses sorted by interface and address. Duplicates are dropped, the
// first reason kept.
func Select(o Options) ([]Addr, error) {
	var out []Addr
	seen := map[string]bool{}
	add := func(a Addr) {
		if !seen[a.Addr] {
			seen[a.Addr] = true
			out = append(out, a)
		}
	}
	for _, s := range o.Advertise {
		add(Addr{Addr: s, Kind: Manual, Reason: "given with --advertise"})
	}
	if o.External.IsValid() {
		reason := "public address, forwarded by the router (UPnP or NAT-PMP)"
		if o.Router != "" {
			reason = "public address, forwarded by router " + o.Router + " (UPnP or NAT-PMP)"
		}
		add(Addr{Addr: o.External.String(), Kind: External, Reason: reason})
	}
	if o.NoLocal || o.Port == 0 {
		return out, nil
	}
	if b := o.Bind.Unmap(); b.IsValid() && !b.IsUnspecified() {
		add(Addr{Addr: netip.AddrPortFrom(b, o.Port).String(), Kind: kindOf(b), Reason: "the address the share listens on (--listen)"})
		return out, nil
	}
	list := o.Interfaces
	if list == nil {
		list = LocalInterfaces
	}
	ifs, err := list()
	if err != nil {
		return out, fmt.Errorf("list network interfaces: %w", err)
	}
	type localAddr struct {
		Addr
		ifName string
	}
	var local []localAddr
	for _, ifc := range ifs {
		ip := ifc.Addr.Unmap()
		switch {
		case !ip.IsValid() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified():
		case ip.Is4() && ip.IsPrivate():
			local = append(local, localAddr{Addr{Addr: netip.AddrPortFrom(ip, o.Port).String(), Kind: LAN, Reason: "LAN address on " + ifc.Name + ", for peers on the same network"}, ifc.Name})
		case ip.Is4():
			local = append(local, localAddr{Addr{Addr: netip.AddrPortFrom(ip, o.Port).String(), Kind: LAN, Reason: "address on " + ifc.Name}, ifc.Name})
		case ip.IsGlobalUnicast() && !ip.IsPrivate():
			local = append(local, localAddr{Addr{Addr: netip.AddrPortFrom(ip, o.Port).String(), Kind: IPv6, Reason: "global IPv6 address on " + ifc.Name + ", needs no port forwarding"}, ifc.Name})
		}
	}
	slices.SortFunc(local, func(a, b localAddr) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.ifName, b.ifName), strings.Compare(a.Addr.Addr, b.Addr.Addr))
	})
	for _, a := range local {
		add(a.Addr)
	}
	return out, nil
}

func kindOf(ip netip.Addr) Kind {
	if ip.Is4() {
		return LAN
	}
	return IPv6
}

// LocalInterfaces lists the addresses of the interfaces that are up and
// running (a bridge without any member, like an idle docker0, is not).
func LocalInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Interface
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagRunning == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range as {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			out = append(out, Interface{Name: ifc.Name, Addr: ip.Unmap()})
		}
	}
	return out, nil
}

// ParseAdvertise checks one --advertise value: HOST:PORT with a host name,
// IPv4 address or bracketed IPv6 address and a port 1-65535. It returns the
// value in canonical form.
func ParseAdvertise(s string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("--advertise %q: want HOST:PORT, e.g. example.org:2222 or [2001:db8::1]:2222", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("--advertise %q: port %q is not a number from 1 to 65535", s, port)
	}
	if host == "" {
		return "", fmt.Errorf("--advertise %q: the host is missing; want HOST:PORT", s)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("--advertise %q: an IPv6 zone only makes sense on this computer; give an address peers can reach", s)
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(n)).String(), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("--advertise %q: %q is neither an IP address nor a valid host name", s, host)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Strings returns the dialable addresses alone, in order (what discovery
// publishes).
func Strings(as []Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Addr
	}
	return out
}

// Write prints one line per address with its reason, indented, for the
// start-up output.
func Write(w io.Writer, as []Addr) {
	width := 0
	for _, a := range as {
		width = max(width, len(a.Addr))
	}
	for _, a := range as {
		fmt.Fprintf(w, "  %-*s  %s\n", width, a.Addr, a.Reason)
	}
}
