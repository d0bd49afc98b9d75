package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/netsel/netsel/addrpolicy"
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
