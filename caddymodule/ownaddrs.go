package caddymodule

import (
	"net/netip"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/netsel/netsel/addrpolicy"
)

// maxReservedRange bounds the ports one listen address with a port range
// may reserve.
const maxReservedRange = 1024

// reserveOwnListeners adds the listen addresses of the config's http and
// layer4 servers to the dial policy, so that no instance makes a proxy
// connect to itself. It runs in Start, when every app is provisioned. Host
// names and unix sockets are left out: name them in dial_policy.reserved.
func (a *App) reserveOwnListeners() {
	if a.ctx.Context == nil {
		return
	}
	var listen []string
	if v, err := a.ctx.AppIfConfigured("http"); err == nil {
		if app, ok := v.(*caddyhttp.App); ok {
			for _, srv := range app.Servers {
				listen = append(listen, srv.Listen...)
			}
		}
	}
	if v, err := a.ctx.AppIfConfigured("layer4"); err == nil {
		if app, ok := v.(*layer4.App); ok {
			for _, srv := range app.Servers {
				listen = append(listen, srv.Listen...)
			}
		}
	}
	repl := caddy.NewReplacer()
	cfg := a.policyCfg
	cfg.Reserved = slices.Clip(cfg.Reserved)
	for _, l := range listen {
		na, err := caddy.ParseNetworkAddress(repl.ReplaceAll(l, ""))
		if err != nil || na.IsUnixNetwork() || na.PortRangeSize() > maxReservedRange {
			continue
		}
		host := netip.IPv4Unspecified()
		if na.Host != "" {
			if host, err = netip.ParseAddr(na.Host); err != nil {
				a.logger.Debug("not reserving a listener by host name", zap.String("listen", l))
				continue
			}
		}
		for p := na.StartPort; p <= na.EndPort && p > 0 && p <= 65535; p++ {
			cfg.Reserved = append(cfg.Reserved, netip.AddrPortFrom(host, uint16(p)))
		}
	}
	if len(cfg.Reserved) == len(a.policyCfg.Reserved) {
		return
	}
	p, err := addrpolicy.New(cfg)
	if err != nil {
		a.logger.Warn("cannot reserve the config's own listeners in the dial policy", zap.Error(err))
		return
	}
	a.policy.Store(p)
}
