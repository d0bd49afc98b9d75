package stack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/vipnet"
)

// ParseUpstreams parses a comma-separated list of resolvers, each an IP
// address or IP:port (port 53 by default), into host:port strings.
func ParseUpstreams(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(u); err == nil {
			out = append(out, ap.String())
			continue
		}
		a, err := netip.ParseAddr(u)
		if err != nil {
			return nil, fmt.Errorf("resolver %q is not an IP address or IP:port", u)
		}
		out = append(out, netip.AddrPortFrom(a, 53).String())
	}
	if len(out) == 0 {
		return nil, errors.New("no resolver given")
	}
	return out, nil
}

// ResolvConfUpstreams returns the nameservers of the resolv.conf at path as
// host:port, leaving out self (the DNS server's own listen address, e.g.
// 127.0.0.1:53 or :53): a server forwarding to itself would loop. It is an
// error when none is left.
func ResolvConfUpstreams(path, self string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	selfHost, selfPort, err := net.SplitHostPort(self)
	if err != nil {
		return nil, fmt.Errorf("DNS address %q: %w", self, err)
	}
	selfAddr, _ := netip.ParseAddr(selfHost)
	var out []string
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		a = a.Unmap().WithZone("")
		port := cc.Port
		if port == "" {
			port = "53"
		}
		if port == selfPort && isSelf(a, selfAddr) {
			continue
		}
		out = append(out, net.JoinHostPort(a.String(), port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no nameserver but this server (%s); give -dns-forward, or none", path, self)
	}
	return out, nil
}

// isSelf reports whether a server at a is a DNS server listening on self
// (invalid for a wildcard listen): the same address, or a loopback or
// unspecified listen that a reaches.
func isSelf(a, self netip.Addr) bool {
	switch {
	case !self.IsValid() || self.IsUnspecified():
		return a.IsLoopback() || isLocalAddr(a)
	default:
		return a == self.Unmap()
	}
}

// isLocalAddr reports whether a is an address of one of this host's
// interfaces.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := vipnet.HostAddrs()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Unmap() == a })
}
