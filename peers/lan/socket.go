package lan

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
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
				if err := joinGroup(d.v6, ifc.Index); err != nil {
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
