package addrpolicy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ParsePrefix parses a CIDR such as "10.0.0.0/8", or a single address,
// which stands for itself alone.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePrefixes parses a comma-separated list of ParsePrefix forms; empty
// items are skipped.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseListen returns the address:ports a listen address or URL stands for:
// "127.0.0.1:9000", "[::1]:53", ":8081" (every address: 0.0.0.0), or a URL
// such as "http://10.0.0.1:2379" (its default port when it names none). A
// host name is resolved with resolver (nil: net.DefaultResolver). A
// unix:// URL or an empty string stands for nothing.
func ParseListen(ctx context.Context, resolver *net.Resolver, s string) ([]netip.AddrPort, error) {
	host, port, err := splitListen(s)
	if err != nil || host == "-" {
		return nil, err
	}
	var addrs []netip.Addr
	switch a, err := netip.ParseAddr(host); {
	case host == "":
		addrs = []netip.Addr{netip.IPv4Unspecified()}
	case err == nil:
		addrs = []netip.Addr{a.WithZone("")}
	default:
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		if addrs, err = resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
	}
	out := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		out[i] = netip.AddrPortFrom(a.Unmap(), port)
	}
	return out, nil
}

// CheckListen reports what is wrong with s as a ParseListen argument,
// without resolving host names.
func CheckListen(s string) error {
	_, _, err := splitListen(s)
	return err
}

// splitListen returns the host and port of a ParseListen argument; host
// "-" means s stands for no address.
func splitListen(s string) (host string, port uint16, err error) {
	if s == "" {
		return "-", 0, nil
	}
	hostport := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", 0, fmt.Errorf("%q is not a URL: %w", s, err)
		}
		switch u.Scheme {
		case "unix", "unixs":
			return "-", 0, nil
		case "http":
			hostport = hostWithPort(u, "80")
		case "https":
			hostport = hostWithPort(u, "443")
		default:
			hostport = u.Host
		}
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("%q: port %q is not in 1-65535", s, portStr)
	}
	return host, uint16(p), nil
}

func hostWithPort(u *url.URL, def string) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), def)
}
