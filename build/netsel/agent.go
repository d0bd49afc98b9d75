package main

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/netsel/netsel/internal/hostaddr"
)

// hostAddr returns the agent's host address: -advertise, or the source
// address of this host's route to the first etcd endpoint.
func (f *serveFlags) hostAddr(ctx context.Context) (netip.Addr, error) {
	if f.advertise != "" {
		a, err := netip.ParseAddr(f.advertise)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("-advertise: %w", err)
		}
		if a.IsLoopback() || a.IsUnspecified() {
			return netip.Addr{}, fmt.Errorf("-advertise %s: other hosts cannot reach this host at a loopback or unspecified address", a)
		}
		return a.Unmap(), nil
	}
	first, _, _ := strings.Cut(f.etcd, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Host == "" {
		return netip.Addr{}, fmt.Errorf("-etcd: %q is not a URL", first)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a, err := hostaddr.RouteSource(ctx, u)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding this host's address (give -advertise): %w", err)
	}
	if a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("the route to etcd at %s leaves from loopback (%s): give -advertise with the address other hosts reach this host at", u.Host, a)
	}
	return a, nil
}
