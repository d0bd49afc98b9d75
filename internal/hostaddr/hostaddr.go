// Package hostaddr finds the address other hosts reach this host at.
package hostaddr

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// RouteSource returns the source address this host uses on its route to
// the server at u, as Consul finds its advertise address: it connects a
// UDP socket to the server, which sends nothing, and reads the socket's
// local address.
func RouteSource(ctx context.Context, u *url.URL) (netip.Addr, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", u.Host, err)
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("route to %s: local address %v is not UDP", u.Host, conn.LocalAddr())
	}
	return ua.AddrPort().Addr().Unmap().WithZone(""), nil
}
