package lan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// target is one destination of our announcements.
type target struct {
	addr *net.UDPAddr
}

// listenUDP opens a socket on the shared port with the options of
// setSockopts (per platform).
func listenUDP(network string, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setSockopts(network, fd) }); err != nil {
			return err
		}
		return serr
	}}
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	if network == "udp6" {
		addr = fmt.Sprintf("[::]:%d", port)
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// sock is one of the two sockets on the shared port, with its x/net view
// for what the net package does not do: arrival interfaces and the IPv6
// group. Exactly one of p4 and p6 is set.
type sock struct {
	*net.UDPConn
	p4 *ipv4.PacketConn
	p6 *ipv6.PacketConn
}

// listen4 opens the IPv4 socket, asking for each datagram's arrival
// interface where the platform reports it.
func listen4(port int) (*sock, error) {
	c, err := listenUDP("udp4", port)
	if err != nil {
		return nil, err
	}
	s := &sock{UDPConn: c, p4: ipv4.NewPacketConn(c)}
	if arrivalKnown {
		if err := s.p4.SetControlMessage(ipv4.FlagInterface, true); err != nil {
			c.Close()
			return nil, fmt.Errorf("ask for the arrival interface of IPv4 datagrams: %w", err)
		}
	}
	return s, nil
}

// listen6 opens the IPv6 socket like listen4, with multicast loopback on:
// other processes on this host joined the group too.
func listen6(port int) (*sock, error) {
	c, err := listenUDP("udp6", port)
	if err != nil {
		return nil, err
	}
	s := &sock{UDPConn: c, p6: ipv6.NewPacketConn(c)}
	if arrivalKnown {
		err = s.p6.SetControlMessage(ipv6.FlagInterface, true)
	}
	if err == nil {
		err = s.p6.SetMulticastLoopback(true)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("set up the IPv6 socket: %w", err)
	}
	return s, nil
}

// readFrom reads one datagram into b and tells its arrival interface, or
// -1 when the platform does not.
func (s *sock) readFrom(b []byte) (n int, from net.Addr, ifindex int, err error) {
	ifindex = -1
	if s.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, from, err = s.p4.ReadFrom(b)
		if cm != nil {
			ifindex = cm.IfIndex
		}
		return n, from, ifindex, err
	}
	var cm *ipv6.ControlMessage
	n, cm, from, err = s.p6.ReadFrom(b)
	if cm != nil {
		ifindex = cm.IfIndex
	}
	return n, from, ifindex, err
}

// joinGroup joins the IPv6 LAN group on ifc (an IPv6 sock only); being a
// member already is no error.
func (s *sock) joinGroup(ifc *net.Interface) error {
	err := s.p6.JoinGroup(ifc, &net.UDPAddr{IP: Group})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil
	}
	return err
}

// interfaceAllowed reports whether a datagram that arrived on ifindex is
// for us: always when no interfaces were named.
func (d *Discovery) interfaceAllowed(ifindex int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.allowed == nil || ifindex < 0 && !arrivalKnown {
		return true
	}
	return d.allowed[ifindex]
}

// rescan recomputes the announcement targets from the interfaces and joins
// the IPv6 group on new ones. It reports whether anything changed since
// the last scan.
func (d *Discovery) rescan() bool {
	ifaces, err := net.Interfaces()
	if err != nil {
		d.log.Debug("list interfaces", "err", err)
		return false
	}
	var (
		targets []target
		sig     strings.Builder
		allowed map[int]bool
		v6ifs   []net.Interface
	)
	if len(d.opts.Interfaces) > 0 {
		allowed = map[int]bool{}
	}
	seen := map[string]bool{}
	for _, ifc := range ifaces {
		if len(d.opts.Interfaces) > 0 && !slices.Contains(d.opts.Interfaces, ifc.Name) {
			continue
		}
		if allowed != nil {
			allowed[ifc.Index] = true
		}
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		fmt.Fprintf(&sig, "%d %s %v:", ifc.Index, ifc.Name, ifc.Flags)
		hasV6 := false
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			sig.WriteString(" " + ipn.String())
			ip4 := ipn.IP.To4()
			if ip4 == nil {
				hasV6 = true
				continue
			}
			if ifc.Flags&(net.FlagBroadcast|net.FlagLoopback) == 0 {
				continue
			}
			b := broadcastAddr(ip4, ipn.Mask)
			if b != nil && !seen[b.String()] {
				seen[b.String()] = true
				targets = append(targets, target{addr: &net.UDPAddr{IP: b, Port: d.port}})
			}
		}
		sig.WriteString("\n")
		if hasV6 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0 {
			v6ifs = append(v6ifs, ifc)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.v6 != nil {
		present := map[int]bool{}
		for _, ifc := range v6ifs {
			present[ifc.Index] = true
			if !d.joined[ifc.Index] {
				if err := d.v6.joinGroup(&ifc); err != nil {
					d.log.Debug("join IPv6 LAN group", "interface", ifc.Name, "err", err)
					continue
				}
				d.joined[ifc.Index] = true
			}
			targets = append(targets, target{addr: &net.UDPAddr{IP: Group, Port: d.port, Zone: ifc.Name}})
		}
		for idx := range d.joined {
			if !present[idx] {
				delete(d.joined, idx) // the kernel left the group with the interface
			}
		}
	}
	d.targets = targets
	d.allowed = allowed
	s := sig.String()
	changed := s != d.lastSig
	d.lastSig = s
	return changed
}

// broadcastAddr is the IPv4 broadcast address of the network ip4/mask,
// or nil for a /31 or /32, which have none.
func broadcastAddr(ip4 net.IP, mask net.IPMask) net.IP {
	if ones, bits := mask.Size(); bits-ones < 2 {
		return nil
	}
	if len(mask) == net.IPv6len {
		mask = mask[12:]
	}
	b := make(net.IP, net.IPv4len)
	for i := range b {
		b[i] = ip4[i] | ^mask[i]
	}
	return b
}
