package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/vipnet"
)

// reservedAddrs returns every address the runner listens on or dials etcd
// at, as given: the registrar, DNS, the HTTP proxy, the embedded etcd's
// client and peer addresses, or the external etcd's endpoints.
func (f *serveFlags) reservedAddrs() []string {
	addrs := []string{f.registrar, f.dns, f.http}
	if f.etcd == "" {
		addrs = append(addrs, f.etcdListen, f.etcdPeer)
	} else {
		addrs = append(addrs, strings.Split(f.etcd, ",")...)
	}
	out := addrs[:0]
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// addrPolicy returns the instance address policy of -allow-cidr,
// -deny-cidr and the runner's own addresses, host names resolved.
func (f *serveFlags) addrPolicy(ctx context.Context) (addrpolicy.Config, error) {
	var c addrpolicy.Config
	var err error
	if c.Allow, err = addrpolicy.ParsePrefixes(f.allowCIDR); err != nil {
		return c, fmt.Errorf("-allow-cidr: %w", err)
	}
	if c.Deny, err = addrpolicy.ParsePrefixes(f.denyCIDR); err != nil {
		return c, fmt.Errorf("-deny-cidr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, a := range f.reservedAddrs() {
		aps, err := addrpolicy.ParseListen(ctx, nil, a)
		if err != nil {
			return c, fmt.Errorf("the runner's own address %s: %w", a, err)
		}
		c.Reserved = append(c.Reserved, aps...)
	}
	if _, err := addrpolicy.New(c); err != nil {
		return c, err
	}
	return c, nil
}

// checkVIPRange checks the VIP range against this host's addresses, the
// runner's listen addresses and the etcd endpoints.
func (f *serveFlags) checkVIPRange(cidr netip.Prefix) error {
	host, err := vipnet.HostAddrs()
	if err != nil {
		return fmt.Errorf("-vip-cidr: %w", err)
	}
	own := vipnet.Addrs{Host: host}
	for _, a := range []string{f.registrar, f.dns, f.http, f.etcdListen, f.etcdPeer} {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			own.Listen = append(own.Listen, ap)
		}
	}
	if f.etcd != "" {
		for _, e := range strings.Split(f.etcd, ",") {
			if u, err := url.Parse(strings.TrimSpace(e)); err == nil {
				if ap, err := netip.ParseAddrPort(u.Host); err == nil {
					own.Etcd = append(own.Etcd, ap)
				}
			}
		}
	}
	return vipnet.Check(cidr, own)
}

// vipRange makes the VIP range local to the host (outside 127/8: ip route
// add local CIDR dev lo); undo removes the route it added.
func vipRange(ctx context.Context, cidr netip.Prefix, logger *slog.Logger) (undo func() error, err error) {
	undo, err = vipnet.MakeLocal(ctx, cidr)
	if err != nil {
		return nil, fmt.Errorf("-vip-cidr: %w", err)
	}
	logger.Info("VIP range is local to this host", "vip_cidr", cidr)
	return undo, nil
}
