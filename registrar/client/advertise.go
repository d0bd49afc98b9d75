package client

import (
	"context"

	"github.com/netsel/netsel/internal/hostaddr"
)

// advertise returns the address to register for an instance that gives
// none: this host's source address on its route to the registrar tried
// first. It returns "" — the registrar then fills the address in — when
// that source is loopback (the registrar runs on this host) or the route
// is unknown.
func (c *Client) advertise(ctx context.Context) string {
	u := c.urls[int(c.cur.Load())%len(c.urls)]
	a, err := hostaddr.RouteSource(ctx, u)
	if err != nil {
		c.log.Debug("no route to the registrar; it fills the instance address in", "err", err)
		return ""
	}
	if a.IsLoopback() {
		return ""
	}
	return a.String()
}
