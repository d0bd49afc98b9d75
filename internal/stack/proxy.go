package stack

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	// The http app, reverse_proxy and the rest of the standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/netsel/netsel/caddymodule"
	"github.com/netsel/netsel/internal/logs"
)

// startProxies starts Caddy in-process with the netsel app: the HTTP proxy
// (reverse_proxy to service <svc> of a Host <svc>.<zone>) and the layer-4
// listeners on every service VIP. Caddy runs one config per process; stop
// unloads it.
func startProxies(c *Config) (stop func(), err error) {
	log := logs.Part(c.Logger, "caddy")
	stream, release := registerCaddyLogger(log)
	cfg, err := CaddyConfig(c, stream)
	if err != nil {
		release()
		return nil, err
	}
	if err := caddy.Load(cfg, true); err != nil {
		release()
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	log.Info("proxies started", "http", c.Proxy.HTTPAddr, "vip_proxy", c.Proxy.VIP)
	return func() {
		if err := caddy.Stop(); err != nil {
			log.Error("stopping caddy", "err", err)
		}
		release()
	}, nil
}

// CaddyConfig is the Caddy JSON config of c's proxies, logging to the
// stack's log stream named stream: admin off, nothing persisted, no
// automatic HTTPS, storage under the user cache directory.
func CaddyConfig(c *Config, stream string) ([]byte, error) {
	p := c.Proxy
	app := caddymodule.App{
		Endpoints:  c.Etcd.Endpoints,
		Prefix:     c.Keyspace.Prefix(),
		DialPolicy: dialPolicy(c),
		Locality:   c.Locality,
	}
	app.Username, app.Password = c.Etcd.reader()
	if c.Etcd.CertFile != "" || c.Etcd.CAFile != "" {
		app.TLS = &caddymodule.TLSConfig{Cert: c.Etcd.CertFile, Key: c.Etcd.KeyFile, CA: c.Etcd.CAFile}
	}
	if p.VIP {
		vp := p.VIPLimits
		vp.Enabled = true
		if vp.DialTimeout == 0 {
			vp.DialTimeout = caddy.Duration(2 * time.Second)
		}
		app.VIPProxy = &vp
	}
	if zone := strings.TrimSuffix(p.Zone, "."); zone != "" {
		app.Zones = []string{zone}
	}
	apps := caddy.ModuleMap{"netsel": caddyconfig.JSON(&app, nil)}
	if p.HTTPAddr != "" {
		srv := &caddyhttp.Server{
			Listen:    []string{p.HTTPAddr},
			Protocols: []string{"h1", "h2", "h2c"}, // gRPC clients speak h2c
			Routes:    caddyhttp.RouteList{{HandlersRaw: httpHandlers(p.MaxHTTPConns, p.TagsHeader)}},
			AutoHTTPS: &caddyhttp.AutoHTTPSConfig{Disabled: true},
		}
		if p.MaxHTTPConns > 0 {
			srv.ListenerWrappersRaw = []json.RawMessage{caddyconfig.JSONModuleObject(
				caddymodule.LimitListener{MaxConns: p.MaxHTTPConns}, "wrapper", "netsel_limit", nil)}
		}
		if p.AccessLog {
			srv.Logs = &caddyhttp.ServerLogConfig{}
		}
		apps["http"] = caddyconfig.JSON(caddyhttp.App{Servers: map[string]*caddyhttp.Server{"netsel": srv}}, nil)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	noPersist := false
	cfg := caddy.Config{
		Admin: &caddy.AdminConfig{Disabled: true, Config: &caddy.ConfigSettings{Persist: &noPersist}},
		StorageRaw: caddyconfig.JSONModuleObject(map[string]string{"root": filepath.Join(dir, "netsel", "caddy")},
			"module", "file_system", nil),
		// Caddy's entries go to the stack's logger through the netsel
		// core, which the stack's handler filters by level. The writer
		// stays stderr, Caddy's own default, at a level nothing is
		// logged at: a different writer would make Caddy announce the
		// change on stderr, in its own format, before it takes effect.
		Logging: &caddy.Logging{Logs: map[string]*caddy.CustomLog{"default": {BaseLog: caddy.BaseLog{
			WriterRaw: caddyconfig.JSONModuleObject(struct{}{}, "output", "stderr", nil),
			Level:     "FATAL",
			CoreRaw:   caddyconfig.JSONModuleObject(caddyLogCore{Stream: stream}, "module", "netsel", nil),
		}}}},
		AppsRaw: apps,
	}
	return json.Marshal(cfg)
}

// httpHandlers route by Host: the netsel handler answers 404 outside the
// zone, 508 to a request that looped back, 502 for an unknown service,
// then reverse_proxy balances over the service's instances with retries,
// passive health checks and a keep-alive pool sized for load.
func httpHandlers(maxConns int, tagsHeader string) []json.RawMessage {
	// Idle upstream connections count against the descriptor budget too:
	// at most one per client connection the proxy may hold.
	idle, perHost := 4096, 512
	if maxConns > 0 {
		idle, perHost = min(idle, maxConns), min(perHost, maxConns)
	}
	rp := reverseproxy.Handler{
		DynamicUpstreamsRaw: caddyconfig.JSONModuleObject(caddymodule.Upstreams{TagsHeader: tagsHeader}, "source", "netsel", nil),
		LoadBalancing: &reverseproxy.LoadBalancing{
			Retries:            2,
			SelectionPolicyRaw: caddyconfig.JSONModuleObject(struct{}{}, "policy", "netsel_weighted", nil),
		},
		HealthChecks: &reverseproxy.HealthChecks{Passive: &reverseproxy.PassiveHealthChecks{
			FailDuration: caddy.Duration(10 * time.Second),
		}},
		TransportRaw: caddyconfig.JSONModuleObject(caddymodule.Transport{HTTPTransport: reverseproxy.HTTPTransport{
			DialTimeout: caddy.Duration(2 * time.Second),
			KeepAlive: &reverseproxy.KeepAlive{
				IdleConnTimeout:     caddy.Duration(90 * time.Second),
				MaxIdleConns:        idle,
				MaxIdleConnsPerHost: perHost,
			},
		}}, "protocol", "netsel", nil),
	}
	return []json.RawMessage{
		caddyconfig.JSONModuleObject(struct{}{}, "handler", "netsel", nil),
		caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", nil),
	}
}

// dialPolicy is the Caddy app's dial_policy: the VIP range, the stack's
// own addresses and the operator's allow and deny lists.
func dialPolicy(c *Config) *caddymodule.DialPolicy {
	p := &caddymodule.DialPolicy{Reserved: c.ReservedAddrs}
	if c.VIPCIDR.IsValid() {
		p.VIPCIDRs = []string{c.VIPCIDR.String()}
	}
	p.Allow, p.Deny = prefixStrings(c.AddrPolicy.Allow), prefixStrings(c.AddrPolicy.Deny)
	return p
}

func prefixStrings(ps []netip.Prefix) []string {
	var ss []string
	for _, p := range ps {
		ss = append(ss, p.String())
	}
	return ss
}
