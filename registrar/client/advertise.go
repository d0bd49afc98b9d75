package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// routeSource returns the source address this host uses on its route to
// the registrar at u, as Consul finds its advertise address: it connects a
// UDP socket to the registrar, which sends nothing, and reads the socket's
// local address.
func routeSource(ctx context.Context, u *url.URL) (netip.Addr, error) {
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
		return netip.Addr{}, fmt.Errorf("route to registrar %s: %w", u.Host, err)
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("route to registrar %s: local address %v is not UDP", u.Host, conn.LocalAddr())
	}
	return ua.AddrPort().Addr().Unmap().WithZone(""), nil
}

// advertise returns the address to register for an instance that gives
// none: this host's source address on its route to the registrar tried
// first. It returns "" — the registrar then fills the address in — when
// that source is loopback (the registrar runs on this host) or the route
// is unknown.
func (c *Client) advertise(ctx context.Context) string {
	u := c.urls[int(c.cur.Load())%len(c.urls)]
	a, err := routeSource(ctx, u)
	if err != nil {
		c.log.Debug("no route to the registrar; it fills the instance address in", "err", err)
		return ""
	}
	if a.IsLoopback() {
		return ""
	}
	return a.String()
}
