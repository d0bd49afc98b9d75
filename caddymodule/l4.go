package caddymodule

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"

	"github.com/netsel/netsel/catalog"
)

func init() {
	caddy.RegisterModule(new(L4Handler))
}

// defaultL4Service tries the TLS server name, then the HTTP host, as set by
// caddy-l4's tls and http matchers.
const defaultL4Service = "{l4.tls.server_name}{l4.http.host}"

// L4Handler is a caddy-l4 handler that proxies a connection to an instance
// of the service named by a placeholder, so one caddy-l4 port can route TLS
// by SNI or HTTP by Host to NetSel services. Match with the tls or http
// matcher first, so that the placeholders are set; the connection is proxied
// whole, TLS included, with the bytes the matchers read replayed.
type L4Handler struct {
	// Service names the service, with placeholders; the first DNS label of
	// the result is used. Default: <service> of the TLS server name or HTTP
	// host "<service>.<zone>" for one of the app's zones.
	Service string `json:"service,omitempty"`
	// Port is the service port name to reach on instances. Default: the
	// port named "default", else the service's first TCP port.
	Port string `json:"port,omitempty"`
	// DialTimeout bounds each dial to an instance. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Tries is how many instances to try. Default: 3.
	Tries int `json:"tries,omitempty"`
	// Policy is round_robin (default, weighted) or least_conn.
	Policy string `json:"policy,omitempty"`

	app *App
	fwd *forwarder
	rr  atomic.Uint64
}

// CaddyModule returns the Caddy module information.
func (*L4Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.netsel",
		New: func() caddy.Module { return new(L4Handler) },
	}
}

// Provision gets the netsel app and checks the config.
func (h *L4Handler) Provision(ctx caddy.Context) error {
	if err := (&VIPProxyConfig{Policy: h.Policy, DialTimeout: h.DialTimeout, Tries: h.Tries}).validate(); err != nil {
		return fmt.Errorf("layer4.handlers.netsel: %w", err)
	}
	if h.Port != "" && !catalog.ValidName(h.Port) {
		return fmt.Errorf("layer4.handlers.netsel: port %q is not a valid port name", h.Port)
	}
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	h.app = app
	h.fwd = newForwarder(time.Duration(h.DialTimeout), h.Tries, h.Policy, &app.open)
	return nil
}

// Handle proxies cx to an instance of its service.
func (h *L4Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	var name string
	if h.Service == "" {
		host := cx.Replacer().ReplaceAll(defaultL4Service, "")
		var inZone bool
		if name, inZone = h.app.serviceInZone(host); !inZone {
			return fmt.Errorf("netsel: connection for %q is not for <service>.<zone> in zone %s", host, strings.Join(h.app.zoneList(), ", "))
		}
		if name == "" {
			return fmt.Errorf("netsel: connection names no valid service (%q)", host)
		}
	} else {
		name = strings.ToLower(firstLabel(cx.Replacer().ReplaceAll(h.Service, "")))
		if !catalog.ValidName(name) {
			return fmt.Errorf("netsel: connection names no valid service (%q gave %q)", h.Service, name)
		}
	}
	v := h.app.view(name)
	if v == nil {
		return fmt.Errorf("netsel: unknown service %q", name)
	}
	port := h.Port
	if port == "" {
		port = defaultPort(v.entry.Service)
	}
	up, release, err := h.fwd.dial(cx.Context, v, port, &h.rr)
	if err != nil {
		return fmt.Errorf("netsel: service %q port %q: %w", name, port, err)
	}
	defer release()
	pipe(cx.Conn, up, cx)
	return nil
}

// defaultPort is the port a connection reaches when none is configured.
func defaultPort(svc *catalog.Service) string {
	if svc == nil {
		return catalog.DefaultPortName
	}
	if _, ok := svc.Port(catalog.DefaultPortName); ok {
		return catalog.DefaultPortName
	}
	for _, p := range svc.Ports {
		if p.Transport() == catalog.ProtocolTCP {
			return p.Name
		}
	}
	return catalog.DefaultPortName
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	netsel [<service>] {
//		port         <name>
//		dial_timeout <duration>
//		tries        <n>
//		policy       round_robin|least_conn
//	}
func (h *L4Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // handler name
	if d.NextArg() {
		h.Service = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(d.Nesting()) {
		opt := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		val := d.Val()
		switch opt {
		case "port":
			h.Port = val
		case "policy":
			h.Policy = val
		case "dial_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("bad dial_timeout %q: %v", val, err)
			}
			h.DialTimeout = caddy.Duration(dur)
		case "tries":
			n, err := parseCount(val)
			if err != nil {
				return d.Errf("bad tries %q: %v", val, err)
			}
			h.Tries = n
		default:
			return d.Errf("unrecognized netsel handler option '%s'", opt)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*L4Handler)(nil)
	_ layer4.NextHandler    = (*L4Handler)(nil)
	_ caddyfile.Unmarshaler = (*L4Handler)(nil)
)
