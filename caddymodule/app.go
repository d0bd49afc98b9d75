package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/etcdendpoint"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the netsel Caddy app: one etcd client and one watch-fed catalog
// index per Caddy config, shared by every NetSel module of that config.
// Other modules get it with ctx.App("netsel"); when the config has no netsel
// app, Caddy makes one with the defaults (etcd on 127.0.0.1:2379, prefix
// /netsel/).
type App struct {
	// Endpoints are the etcd client URLs: http(s)://host:port, or
	// unix(s):// with a socket path. Default: http://127.0.0.1:2379.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix is the keyspace prefix; it starts and ends with '/'.
	// Default: /netsel/.
	Prefix string `json:"prefix,omitempty"`
	// Username and Password authenticate to etcd.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS configures client TLS to etcd.
	TLS *TLSConfig `json:"tls,omitempty"`
	// DialTimeout bounds connecting to etcd. Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// VIPProxy configures the layer-4 listeners on every service VIP:port.
	VIPProxy *VIPProxyConfig `json:"vip_proxy,omitempty"`
	// HealthChecks configures active health checks of instances; instances
	// failing them are left out of what the other modules serve.
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`
	// DialPolicy narrows which instance addresses the proxies dial; see
	// DialPolicy for what is refused even without it.
	DialPolicy *DialPolicy `json:"dial_policy,omitempty"`
	// Zones are the domains whose "<service>.<zone>" Hosts the HTTP
	// modules route by default (case-insensitive, with or without a port
	// or a final dot); other Hosts reach no service, and the netsel handler
	// answers them 404. Default: ["netsel"].
	Zones []string `json:"zones,omitempty"`
	// Locality is the instance zone (an instance's "zone") this proxy
	// runs in. When set, the HTTP proxy and the VIP proxy send traffic
	// only to the serving instances in it while there is any, and to the
	// others when there is none (see view.go). Default: none, every
	// serving instance alike.
	Locality string `json:"locality,omitempty"`

	// client is owned by the app; index reads through it.
	client *clientv3.Client
	index  *catalog.Index
	health *healthChecker
	vips   *vipProxy
	views  viewCache
	// open counts connections and requests per instance; reporter says
	// them, with the revision served, in the app's reader key.
	open     openConns
	reporter *catalog.Reporter
	logger   *zap.Logger
	// policy is the dial policy; Start adds the config's own listeners.
	policy    atomic.Pointer[addrpolicy.Policy]
	policyCfg addrpolicy.Config
	ctx       caddy.Context
	zones     []string // lower case, no final dot
	// hop is this app's pseudonym in the Via header of requests its HTTP
	// modules forward, random per config, to detect loops.
	hop string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "netsel",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the config and makes the etcd client and the index. It
// does not start watching: Start does.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	if len(a.Endpoints) == 0 {
		a.Endpoints = []string{defaultEndpoint}
	}
	if err := a.Validate(); err != nil {
		return err
	}
	a.zones = normalZones(a.Zones)
	a.hop = newHopID()
	if err := a.provisionPolicy(); err != nil {
		return fmt.Errorf("netsel: %w", err)
	}
	ks, err := catalog.NewKeyspace(a.Prefix)
	if err != nil {
		return fmt.Errorf("netsel: %w", err)
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return fmt.Errorf("netsel: %w", err)
	}
	a.client, err = clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("netsel: etcd client for %v: %w", a.Endpoints, err)
	}
	sugar := a.logger.Named("catalog").Sugar()
	a.index = catalog.NewIndex(a.client, ks, catalog.IndexOptions{Logf: sugar.Infof})
	a.reporter = catalog.NewReporter(a.client, a.index, catalog.ReporterOptions{
		Kind:        catalog.ReaderProxy,
		Connections: a.open.counts,
		Logf:        a.logger.Named("reader").Sugar().Warnf,
	})
	if a.HealthChecks != nil {
		a.health = newHealthChecker(a.HealthChecks, a.logger.Named("health"))
		a.health.refused = func(snap *catalog.Snapshot, ap netip.AddrPort) bool {
			return a.dialRefused(snap, a.policy.Load(), ap) != nil
		}
	}
	if a.VIPProxy != nil && a.VIPProxy.Enabled {
		a.vips, err = newVIPProxy(ctx, a, a.VIPProxy, a.logger.Named("vip"))
		if err != nil {
			return fmt.Errorf("netsel: vip_proxy: %w", err)
		}
	}
	return nil
}

// Validate checks the config for mistakes Caddy's strict JSON decoding
// cannot catch.
func (a *App) Validate() error {
	for i, ep := range a.Endpoints {
		if err := etcdendpoint.Check(ep); err != nil {
			return fmt.Errorf("netsel: endpoints[%d]: %q: %w", i, ep, err)
		}
	}
	if a.Prefix != "" {
		if _, err := catalog.NewKeyspace(a.Prefix); err != nil {
			return fmt.Errorf("netsel: %w", err)
		}
	}
	if a.TLS != nil {
		if err := a.TLS.validate(); err != nil {
			return fmt.Errorf("netsel: tls: %w", err)
		}
	}
	if a.VIPProxy != nil {
		if err := a.VIPProxy.validate(); err != nil {
			return fmt.Errorf("netsel: vip_proxy: %w", err)
		}
	}
	if a.HealthChecks != nil {
		if err := a.HealthChecks.validate(); err != nil {
			return fmt.Errorf("netsel: health_checks: %w", err)
		}
	}
	if err := a.DialPolicy.validate(); err != nil {
		return fmt.Errorf("netsel: %w", err)
	}
	if err := validateZones(a.Zones); err != nil {
		return fmt.Errorf("netsel: %w", err)
	}
	if a.Locality != "" {
		if err := catalog.CheckName("locality", a.Locality); err != nil {
			return fmt.Errorf("netsel: %w", err)
		}
	}
	return nil
}

// Start starts the watch and, when configured, the health checks and the
// VIP listeners. It does not wait for etcd: until the first read completes
// the modules serve an empty catalog.
func (a *App) Start() error {
	a.reserveOwnListeners()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.goRun(func() { _ = a.index.Run(ctx) })
	a.goRun(func() { _ = a.reporter.Run(ctx) })
	if a.health != nil {
		a.goRun(func() { a.health.run(ctx, a.index) })
	}
	if a.vips != nil {
		a.goRun(func() { a.vips.run(ctx) })
	}
	a.logger.Info("netsel started",
		zap.Strings("endpoints", a.Endpoints),
		zap.String("prefix", a.index.Keyspace().Prefix()),
		zap.Bool("vip_proxy", a.vips != nil),
		zap.Bool("health_checks", a.health != nil))
	return nil
}

func (a *App) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// Stop stops the watch, the health checks and the VIP listeners. Connections
// already proxied through a VIP are left to finish.
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
		a.cancel = nil
	}
	return nil
}

// Cleanup releases the etcd client. Caddy calls it after Stop, and also when
// a config fails to load after Provision, in which case Start never ran.
func (a *App) Cleanup() error {
	err := a.Stop()
	if a.client != nil {
		err = errors.Join(err, a.client.Close())
		a.client = nil
	}
	return err
}

// Index returns the app's catalog index.
func (a *App) Index() *catalog.Index { return a.index }

// appFrom returns the netsel app of ctx's config.
func appFrom(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("netsel")
	if err != nil {
		return nil, fmt.Errorf("getting netsel app: %w", err)
	}
	return v.(*App), nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
