package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by the error of every connection the receivers
// firewall refuses.
var ErrBlocked = errors.New("receivers firewall")

// firewall decides which addresses notifications may connect to. It is
// consulted with the address a connection is about to use, after name
// resolution, so a name that resolves to a refused address (or starts to,
// between two notifications) is refused too. It is safe for concurrent use.
type firewall struct {
	cfg FirewallConfig
	// ownPorts are ports this process listens on at every local address;
	// ownAddrs are listeners bound to one address.
	ownPorts map[uint16]bool
	ownAddrs map[netip.AddrPort]bool
	localIPs map[netip.Addr]bool
	resolver *net.Resolver
}

// newFirewall returns the firewall for cfg; own are the addresses the
// process listens on (host:port, host empty for every interface).
func newFirewall(cfg FirewallConfig, own []string) *firewall {
	f := &firewall{cfg: cfg, ownPorts: map[uint16]bool{}, ownAddrs: map[netip.AddrPort]bool{}, localIPs: map[netip.Addr]bool{},
		resolver: net.DefaultResolver}
	for _, a := range own {
		host, port, err := net.SplitHostPort(a)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil {
			continue
		}
		ip, err := netip.ParseAddr(host)
		if host == "" || err == nil && ip.IsUnspecified() {
			f.ownPorts[uint16(p)] = true
			continue
		}
		if err == nil {
			f.ownAddrs[netip.AddrPortFrom(ip.Unmap(), uint16(p))] = true
			continue
		}
		f.ownPorts[uint16(p)] = true // a name: be safe, any local address
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				f.localIPs[p.Addr().Unmap()] = true
			}
		}
	}
	return f
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// specialIPv4 are IPv4 networks that are neither public nor covered by the
// netip predicates.
var specialIPv4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and the broadcast address
}

// check returns nil if a notification may connect to ip:port, else an
// error wrapping ErrBlocked that says why and which flag decides it.
func (f *firewall) check(ip netip.Addr, port uint16) error {
	ip = ip.Unmap()
	if f.ownAddrs[netip.AddrPortFrom(ip, port)] || f.ownPorts[port] && (ip.IsLoopback() || ip.IsUnspecified() || f.localIPs[ip]) {
		return fmt.Errorf("%w: %s is a listener of this FluxPulse process; notifications to it are always refused", ErrBlocked, netip.AddrPortFrom(ip, port))
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		if err := f.check(netip.AddrFrom4([4]byte(b[12:])), port); err != nil {
			return fmt.Errorf("%w (NAT64 address %s)", err, ip)
		}
	}
	for _, p := range f.cfg.AllowCIDRs {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range f.cfg.BlockCIDRs {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in %s of -%s; notifications to it are refused", ErrBlocked, ip, p, FlagFirewallBlockCIDRs)
		}
	}
	if !f.cfg.BlockPrivateAddresses {
		return nil
	}
	if kind := privateKind(ip); kind != "" {
		return fmt.Errorf("%w: %s is a %s address; notifications to it are refused (-%s; allow a network with -%s)",
			ErrBlocked, ip, kind, FlagFirewallBlockPrivate, FlagFirewallAllowCIDRs)
	}
	return nil
}

// privateKind names the kind of non-public address ip is, or "".
func privateKind(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local (cloud metadata services live here)"
	case ip.IsPrivate():
		return "private"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range specialIPv4 {
		if p.Contains(ip) {
			return "reserved (" + p.String() + ")"
		}
	}
	return ""
}

// control is the net.Dialer's Control function: it runs with the resolved
// address of every connection attempt, before the connection is made.
func (f *firewall) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check address %q: %v", ErrBlocked, address, err)
	}
	return f.check(ap.Addr(), ap.Port())
}

// dialer returns a dialer whose every connection passes the firewall.
func (f *firewall) dialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: f.control, Resolver: f.resolver}
}

// DialContext dials through the firewall; it is the dial function of every
// integration's HTTP client.
func (f *firewall) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f.dialer().DialContext(ctx, network, address)
}

// resolve returns the first address of host the firewall allows
// connecting to on port, for clients that dial on their own (e-mail): the
// client is then pointed at that address, so that what was checked is what
// is dialled.
func (f *firewall) resolve(ctx context.Context, host string, port uint16) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, f.check(ip, port)
	}
	ips, err := f.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	var errs []error
	for _, ip := range ips {
		err := f.check(ip, port)
		if err == nil {
			return ip.Unmap(), nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no addresses", host)
	}
	return netip.Addr{}, fmt.Errorf("%s resolves to no address notifications may connect to: %w", host, errors.Join(errs...))
}
