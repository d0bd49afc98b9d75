// Package addrpolicy decides which instance addresses NetSel may dial.
//
// Clients are not trusted: an instance registered at an address that no
// proxy should reach — this host's broadcast or a multicast group, a VIP
// (whose listener would forward to itself), or a port NetSel itself listens
// on (the registrar, etcd) — would let a client loop a proxy into itself or
// reach NetSel's own services through it. The registrar refuses such
// registrations and the proxies check again before they dial, with one
// Policy.
//
// Refused always, in plain and IPv4-mapped IPv6 form: the unspecified
// addresses (0.0.0.0/8, ::), the IPv4 broadcast address 255.255.255.255,
// multicast (224.0.0.0/4, ff00::/8) and link-local addresses
// (169.254.0.0/16, fe80::/10). Refused by configuration: the VIP ranges, the
// address:ports NetSel listens on, addresses outside the allow list when one
// is given, and addresses in the deny list.
package addrpolicy

import (
	"fmt"
	"net"
	"net/netip"
)

// Config configures a Policy. The zero value refuses the built-in classes
// only.
type Config struct {
	// VIPRanges are the ranges VIPs come from. No address in them is
	// dialled, whatever the port.
	VIPRanges []netip.Prefix
	// Reserved are the address:ports NetSel listens on. An unspecified
	// address (0.0.0.0 or ::) reserves the port on every local address:
	// all of 127.0.0.0/8, ::1 and LocalAddrs.
	Reserved []netip.AddrPort
	// Allow, when not empty, is the only ranges instances may be in.
	Allow []netip.Prefix
	// Deny are ranges instances may never be in.
	Deny []netip.Prefix
	// LocalAddrs are this host's addresses, which a wildcard listen in
	// Reserved covers. Nil means the addresses of the host's interfaces
	// when New runs.
	LocalAddrs []netip.Addr
}

// Policy says whether an instance address may be dialled. It is immutable
// and safe for concurrent use. A nil *Policy refuses the built-in classes
// only.
type Policy struct {
	vips, allow, deny []netip.Prefix
	reserved          map[netip.AddrPort]bool
	wildcard          map[uint16]bool // ports reserved on every local address
	local             map[netip.Addr]bool
}

// New checks c and returns its Policy.
func New(c Config) (*Policy, error) {
	p := &Policy{
		reserved: map[netip.AddrPort]bool{},
		wildcard: map[uint16]bool{},
		local:    map[netip.Addr]bool{},
	}
	var err error
	if p.vips, err = prefixes("VIP range", c.VIPRanges); err != nil {
		return nil, err
	}
	if p.allow, err = prefixes("allow", c.Allow); err != nil {
		return nil, err
	}
	if p.deny, err = prefixes("deny", c.Deny); err != nil {
		return nil, err
	}
	for _, ap := range c.Reserved {
		if !ap.IsValid() || ap.Port() == 0 {
			return nil, fmt.Errorf("reserved address %s is not an address:port", ap)
		}
		a := ap.Addr().Unmap().WithZone("")
		if a.IsUnspecified() {
			p.wildcard[ap.Port()] = true
			continue
		}
		p.reserved[netip.AddrPortFrom(a, ap.Port())] = true
	}
	local := c.LocalAddrs
	if local == nil && len(p.wildcard) > 0 {
		if local, err = interfaceAddrs(); err != nil {
			return nil, fmt.Errorf("reading local addresses for wildcard reserved ports: %w", err)
		}
	}
	for _, a := range local {
		p.local[a.Unmap().WithZone("")] = true
	}
	return p, nil
}

func prefixes(what string, ps []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			return nil, fmt.Errorf("%s %s is not a CIDR", what, p)
		}
		out = append(out, unmapPrefix(p))
	}
	return out, nil
}

// unmapPrefix returns p in IPv4 form when it is an IPv4-mapped prefix of
// at least 96 bits, so that one comparison covers both forms.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// Error says why an address is refused.
type Error struct {
	// Addr is the refused address as given; Port is 0 when the address
	// is refused whatever the port.
	Addr netip.Addr
	Port uint16
	// Reason completes "<address> is refused: ", e.g. "it is multicast".
	Reason string
}

func (e *Error) Error() string {
	s := e.Addr.String()
	if e.Port != 0 {
		s = netip.AddrPortFrom(e.Addr, e.Port).String()
	}
	return s + " is refused: " + e.Reason
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// CheckAddr returns an *Error when no port of a may be dialled.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if reason := p.refused(a); reason != "" {
		return &Error{Addr: a, Reason: reason}
	}
	return nil
}

// Check returns an *Error when ap may not be dialled.
func (p *Policy) Check(ap netip.AddrPort) error {
	a := ap.Addr()
	if reason := p.refused(a); reason != "" {
		return &Error{Addr: a, Reason: reason}
	}
	if p != nil && p.listening(a.Unmap(), ap.Port()) {
		return &Error{Addr: a, Port: ap.Port(), Reason: "NetSel itself listens there"}
	}
	return nil
}

// Allowed reports whether ap may be dialled.
func (p *Policy) Allowed(ap netip.AddrPort) bool { return p.Check(ap) == nil }

// refused returns why a is refused whatever the port, or "".
func (p *Policy) refused(a netip.Addr) string {
	if !a.IsValid() {
		return "it is not an IP address"
	}
	if a.Zone() != "" {
		return "it carries an IPv6 zone"
	}
	mapped := a.Is4In6()
	a = a.Unmap()
	var reason string
	switch {
	case a.IsUnspecified(), a.Is4() && a.As4()[0] == 0:
		reason = "it is unspecified (this host, any address)"
	case a == broadcast:
		reason = "it is the broadcast address"
	case a.IsMulticast():
		reason = "it is multicast"
	case a.IsLinkLocalUnicast():
		reason = "it is link-local"
	}
	if reason == "" && p != nil {
		reason = p.configured(a)
	}
	if reason != "" && mapped {
		reason += " (IPv4-mapped as " + a.String() + ")"
	}
	return reason
}

// configured returns why the configuration refuses a (unmapped), or "".
func (p *Policy) configured(a netip.Addr) string {
	for _, r := range p.vips {
		if r.Contains(a) {
			return "it is in the VIP range " + r.String()
		}
	}
	for _, r := range p.deny {
		if r.Contains(a) {
			return "it is in the denied range " + r.String()
		}
	}
	if len(p.allow) == 0 {
		return ""
	}
	for _, r := range p.allow {
		if r.Contains(a) {
			return ""
		}
	}
	return "it is outside the allowed ranges"
}

// listening reports whether NetSel listens on a:port (a unmapped).
func (p *Policy) listening(a netip.Addr, port uint16) bool {
	if p.reserved[netip.AddrPortFrom(a, port)] {
		return true
	}
	return p.wildcard[port] && (a.IsLoopback() || p.local[a])
}
