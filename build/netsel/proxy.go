package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"

	// The http app, reverse_proxy and the logging modules the config uses.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/netsel/netsel/caddymodule"
)

// startProxies starts Caddy in-process with the netsel app: the HTTP proxy on
// c.HTTPAddr (reverse_proxy to service <svc> of a Host <svc>.<zone>)
// and, when c.VIPProxy is set, the layer-4 listeners on every service VIP.
// Caddy runs one config per process; stop unloads it.
func startProxies(_ context.Context, c stackConfig) (stop func(), err error) {
	cfg, err := proxyConfig(c)
	if err != nil {
		return nil, err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	c.Logger.Info("proxies started", "http", c.HTTPAddr, "vip_proxy", c.VIPProxy)
	return func() {
		if err := caddy.Stop(); err != nil {
			c.Logger.Error("stopping caddy", "err", err)
		}
	}, nil
}

// proxyConfig is the Caddy JSON config for c: admin off, nothing persisted,
// no automatic HTTPS, storage under the user cache directory.
func proxyConfig(c stackConfig) ([]byte, error) {
	app := map[string]any{
		"endpoints": c.EtcdEndpoints,
		"prefix":    c.Keyspace.Prefix(),
	}
	if user, password := c.readerCredentials(); user != "" {
		app["username"], app["password"] = user, password
	}
	if c.EtcdCertFile != "" || c.EtcdCAFile != "" {
		app["tls"] = map[string]string{"cert": c.EtcdCertFile, "key": c.EtcdKeyFile, "ca": c.EtcdCAFile}
	}
	if c.VIPProxy {
		vp := map[string]any{"enabled": true, "dial_timeout": "2s"}
		maps.Copy(vp, c.VIPLimits)
		app["vip_proxy"] = vp
	}
	app["dial_policy"] = dialPolicy(c)
	if zone := strings.TrimSuffix(c.DNSZone, "."); zone != "" {
		app["zones"] = []string{zone}
	}
	apps := map[string]any{"netsel": app}
	if c.HTTPAddr != "" {
		srv := map[string]any{
			"listen":          []string{c.HTTPAddr},
			"routes":          []any{map[string]any{"handle": httpHandlers(c.Budget.HTTPConns)}},
			"automatic_https": map[string]any{"disable": true},
		}
		if c.Budget.HTTPConns > 0 {
			srv["listener_wrappers"] = []any{map[string]any{"wrapper": "netsel_limit", "max_conns": c.Budget.HTTPConns}}
		}
		apps["http"] = map[string]any{"servers": map[string]any{"netsel": srv}}
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "netsel", "caddy")},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"level":   "WARN",
			"encoder": map[string]any{"format": "console"},
		}}},
		"apps": apps,
	})
}

// httpHandlers route by Host: the netsel handler answers 404 outside the
// zone, 508 to a request that looped back, 502 for an unknown
// service, then reverse_proxy balances over the service's instances with
// retries, passive health checks and a keep-alive pool sized for load.
func httpHandlers(maxConns int) []any {
	// Idle upstream connections count against the descriptor budget too:
	// at most one per client connection the proxy may hold.
	idle, perHost := 4096, 512
	if maxConns > 0 {
		idle, perHost = min(idle, maxConns), min(perHost, maxConns)
	}
	return []any{
		map[string]any{"handler": "netsel"},
		map[string]any{
			"handler":           "reverse_proxy",
			"dynamic_upstreams": map[string]any{"source": "netsel"},
			"load_balancing": map[string]any{
				"retries":          2,
				"selection_policy": map[string]any{"policy": "netsel_weighted"},
			},
			"health_checks": map[string]any{"passive": map[string]any{"fail_duration": "10s"}},
			"transport": map[string]any{
				"protocol":     "http",
				"dial_timeout": "2s",
				"keep_alive": map[string]any{
					"idle_timeout":            "90s",
					"max_idle_conns":          idle,
					"max_idle_conns_per_host": perHost,
				},
			},
		},
	}
}

// dialPolicy is the Caddy app's dial_policy: the VIP range, the runner's
// own addresses and the operator's allow and deny lists.
func dialPolicy(c stackConfig) map[string]any {
	p := map[string]any{"reserved": c.ReservedAddrs}
	if c.VIPCIDR.IsValid() {
		p["vip_cidrs"] = []string{c.VIPCIDR.String()}
	}
	for key, ps := range map[string][]netip.Prefix{"allow": c.AddrPolicy.Allow, "deny": c.AddrPolicy.Deny} {
		if len(ps) > 0 {
			ss := make([]string, len(ps))
			for i, p := range ps {
				ss[i] = p.String()
			}
			p[key] = ss
		}
	}
	return p
}
