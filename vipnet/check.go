package vipnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Smallest ranges Check accepts: a VIP range holds one address per service,
// and a range this small is almost always a typing mistake.
const (
	MinBits4 = 24  // IPv4 ranges must be /24 or larger
	MinBits6 = 120 // IPv6 ranges must be /120 or larger
)

// mapped holds the IPv4-mapped IPv6 addresses.
var mapped = netip.MustParsePrefix("::ffff:0:0/96")

// Addrs are the addresses a VIP range must not cover.
type Addrs struct {
	// Host are the addresses of the host's interfaces with their
	// prefix lengths, as HostAddrs returns them.
	Host []netip.Prefix
	// Listen are the addresses this process listens on.
	Listen []netip.AddrPort
	// Etcd are the etcd endpoints this process dials.
	Etcd []netip.AddrPort
}

// Check reports why cidr cannot serve as the VIP range (the -vip-cidr
// flag) on a host with the addresses own, or nil when it can. It refuses a
// range that
//
//   - is not a valid prefix, or overlaps the IPv4-mapped IPv6 addresses
//     (::ffff:0:0/96), which would mix IPv4 and IPv6;
//   - is smaller than /24 (IPv4) or /120 (IPv6);
//   - overlaps the subnet of a non-loopback interface address: making the
//     range local would capture the traffic to that subnet's neighbours,
//     and to the host's own address when it lies in the range;
//   - contains a loopback interface address such as 127.0.0.1 or ::1 (only
//     the address counts, not its prefix, so the default 127.77.0.0/16
//     passes on a host with 127.0.0.1/8 on lo);
//   - contains one of the listen addresses or etcd endpoints.
//
// Unspecified addresses (":8081", "0.0.0.0") in own are ignored.
func Check(cidr netip.Prefix, own Addrs) error {
	if !cidr.IsValid() {
		return errors.New("-vip-cidr: not a valid CIDR")
	}
	cidr = cidr.Masked()
	a := cidr.Addr()
	switch {
	case a.Is6() && cidr.Overlaps(mapped):
		return fmt.Errorf("-vip-cidr %s: a range of IPv4-mapped IPv6 addresses mixes IPv4 and IPv6; give the IPv4 range itself", cidr)
	case a.Is4() && cidr.Bits() > MinBits4:
		return fmt.Errorf("-vip-cidr %s: smaller than /%d", cidr, MinBits4)
	case a.Is6() && cidr.Bits() > MinBits6:
		return fmt.Errorf("-vip-cidr %s: smaller than /%d", cidr, MinBits6)
	}
	for _, p := range own.Host {
		p = unmapPrefix(p)
		if !p.IsValid() {
			continue
		}
		if p.Addr().IsLoopback() {
			if cidr.Contains(p.Addr()) {
				return fmt.Errorf("-vip-cidr %s contains the host's loopback address %s", cidr, p.Addr())
			}
			continue
		}
		if cidr.Overlaps(p) {
			return fmt.Errorf("-vip-cidr %s overlaps the host's interface address %s", cidr, p)
		}
	}
	if err := checkAddrPorts(cidr, "listen address", own.Listen); err != nil {
		return err
	}
	return checkAddrPorts(cidr, "etcd endpoint", own.Etcd)
}

func checkAddrPorts(cidr netip.Prefix, what string, aps []netip.AddrPort) error {
	for _, ap := range aps {
		a := ap.Addr().Unmap()
		if a.IsValid() && !a.IsUnspecified() && cidr.Contains(a) {
			return fmt.Errorf("-vip-cidr %s contains the %s %s", cidr, what, ap)
		}
	}
	return nil
}

// unmapPrefix returns p with an IPv4-mapped address turned into IPv4, or
// the zero Prefix when p cannot be turned.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() {
		return p
	}
	bits := p.Bits() - 96
	if bits < 0 {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.Addr().Unmap(), bits)
}

// HostAddrs returns the addresses of the host's interfaces (of the
// calling thread's network namespace on Linux) with their prefix lengths,
// for Addrs.Host. Zones are dropped.
func HostAddrs() ([]netip.Prefix, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the host's interface addresses: %w", err)
	}
	out := make([]netip.Prefix, 0, len(ifas))
	for _, ifa := range ifas {
		ipn, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil && len(ipn.Mask) == net.IPv4len {
			a = a.Unmap()
		}
		ones, _ := ipn.Mask.Size()
		if p := netip.PrefixFrom(a.WithZone(""), ones); p.IsValid() {
			out = append(out, p)
		}
	}
	return out, nil
}
