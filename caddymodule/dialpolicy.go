package caddymodule

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/catalog"
)

// DialPolicy narrows which instance addresses the proxies dial. Whatever it
// says, they never dial the unspecified, broadcast, multicast or link-local
// addresses (nor their IPv4-mapped forms), any VIP of the catalog, or the
// app's own etcd endpoints; an instance at such an address is left out of
// what the modules serve, as if it were unhealthy.
type DialPolicy struct {
	// VIPCIDRs are the ranges VIPs come from (the registrar's -vip-cidr);
	// no address in them is dialled, VIP or not yet.
	VIPCIDRs []string `json:"vip_cidrs,omitempty"`
	// Reserved are the listen addresses of NetSel's own servers
	// ("127.0.0.1:9000", "[::1]:53", ":8081", or etcd URLs), which are
	// never dialled: the proxies' own listeners, the registrar, DNS, etcd.
	// A host with no address (":8081") covers the port on every local
	// address.
	Reserved []string `json:"reserved,omitempty"`
	// Allow, when set, are the only CIDRs (or addresses) dialled.
	Allow []string `json:"allow,omitempty"`
	// Deny are CIDRs (or addresses) never dialled.
	Deny []string `json:"deny,omitempty"`
}

// config parses d into an addrpolicy.Config; host names in Reserved are
// resolved.
func (d *DialPolicy) config(ctx context.Context) (addrpolicy.Config, error) {
	var c addrpolicy.Config
	if d == nil {
		return c, nil
	}
	for _, f := range []struct {
		name string
		in   []string
		out  *[]netip.Prefix
	}{{"vip_cidrs", d.VIPCIDRs, &c.VIPRanges}, {"allow", d.Allow, &c.Allow}, {"deny", d.Deny, &c.Deny}} {
		for i, s := range f.in {
			p, err := addrpolicy.ParsePrefix(s)
			if err != nil {
				return c, fmt.Errorf("%s[%d]: %w", f.name, i, err)
			}
			*f.out = append(*f.out, p)
		}
	}
	for i, s := range d.Reserved {
		aps, err := addrpolicy.ParseListen(ctx, nil, s)
		if err != nil {
			return c, fmt.Errorf("reserved[%d]: %w", i, err)
		}
		c.Reserved = append(c.Reserved, aps...)
	}
	return c, nil
}

// provisionPolicy builds the app's dial policy: its dial_policy, plus its
// own etcd endpoints as reserved addresses.
func (a *App) provisionPolicy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg, err := a.DialPolicy.config(ctx)
	if err != nil {
		return fmt.Errorf("dial_policy: %w", err)
	}
	for _, ep := range a.Endpoints {
		aps, err := addrpolicy.ParseListen(ctx, nil, ep)
		if err != nil {
			// etcd's client will say more; the endpoint stays unreserved.
			a.logger.Warn("cannot resolve etcd endpoint to keep instances off it", zap.String("endpoint", ep), zap.Error(err))
			continue
		}
		cfg.Reserved = append(cfg.Reserved, aps...)
	}
	if a.policy, err = addrpolicy.New(cfg); err != nil {
		return fmt.Errorf("dial_policy: %w", err)
	}
	return nil
}

// dialRefused says why the proxies must not dial ap, or returns nil: the
// dial policy, or ap's address being a VIP of snap.
func (a *App) dialRefused(snap *catalog.Snapshot, ap netip.AddrPort) error {
	if err := a.policy.Check(ap); err != nil {
		return err
	}
	if e, ok := snap.ByVIP(ap.Addr().Unmap()); ok {
		return &addrpolicy.Error{Addr: ap.Addr(), Reason: "it is the VIP of service " + e.Name}
	}
	return nil
}

// validate checks d's syntax without resolving host names.
func (d *DialPolicy) validate() error {
	if d == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		in   []string
	}{{"vip_cidrs", d.VIPCIDRs}, {"allow", d.Allow}, {"deny", d.Deny}} {
		for i, s := range f.in {
			if _, err := addrpolicy.ParsePrefix(s); err != nil {
				return fmt.Errorf("dial_policy: %s[%d]: %w", f.name, i, err)
			}
		}
	}
	for i, s := range d.Reserved {
		if err := addrpolicy.CheckListen(s); err != nil {
			return fmt.Errorf("dial_policy: reserved[%d]: %w", i, err)
		}
	}
	return nil
}
