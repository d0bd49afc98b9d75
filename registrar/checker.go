package registrar

import (
	"context"
	"net/netip"

	"github.com/netsel/netsel/registrar/checks"
)

// startChecks starts the registrar's share of the health checks, unless
// they are disabled.
func (r *Registrar) startChecks(ctx context.Context) error {
	if r.cfg.Checks.Disabled {
		return nil
	}
	c, err := checks.New(checks.Config{
		Options: r.cfg.Checks,
		Client:  r.cfg.Client,
		Leases:  r.leases,
		Renew: func(ctx context.Context, lease int64) (int64, error) {
			ttl, _, err := r.renewer.renew(ctx, lease)
			return ttl, err
		},
		Keyspace: r.ks,
		Index:    r.ix,
		// Probes dial only what a registration could name.
		Allow:       func(ap netip.AddrPort) error { return r.policy.Load().Check(ap) },
		EtcdTimeout: r.cfg.EtcdTimeout,
		Logger:      r.log,
		Registerer:  r.metrics.reg,
	})
	if err != nil {
		return err
	}
	r.checker = c
	r.wg.Go(func() { c.Run(ctx) })
	return nil
}

// Checker returns the registrar's health checker, nil when checks are
// disabled.
func (r *Registrar) Checker() *checks.Checker { return r.checker }
