package caddymodule

import (
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("netsel", parseGlobal)
}

// parseGlobal sets up the netsel app from the Caddyfile global option:
//
//	netsel {
//		endpoint      <url>...
//		prefix        </prefix/>
//		username      <name>
//		password      <password>
//		tls           <cert> <key> [<ca>]
//		tls_ca        <ca>
//		dial_timeout  <duration>
//		vip_proxy {
//			dial_timeout <duration>
//			policy       round_robin|least_conn
//			tries        <n>
//			bind_retry   <duration>
//			max_listeners          <n>
//			max_conns_per_listener <n>
//			max_conns              <n>
//			idle_timeout           <duration>
//			header_timeout         <duration>
//			udp_idle_timeout       <duration>
//		}
//		health_checks {
//			interval <duration>
//			timeout  <duration>
//			path     </path>
//			port     <name>
//			fails    <n>
//		}
//		dial_policy {
//			vip_cidrs <cidr>...
//			reserved  <host:port|url>...
//			allow     <cidr>...
//			deny      <cidr>...
//		}
//		zones <domain>...
//		locality <instance zone>
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "netsel", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the tokens of the netsel global
// option; see parseGlobal for the syntax.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		args := d.RemainingArgs()
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("netsel %s takes one argument", opt)
			}
			return args[0], nil
		}
		var err error
		switch opt {
		case "endpoint", "endpoints":
			if len(args) == 0 {
				return d.Errf("netsel %s needs at least one URL", opt)
			}
			a.Endpoints = append(a.Endpoints, args...)
		case "prefix":
			a.Prefix, err = one()
		case "username":
			a.Username, err = one()
		case "password":
			a.Password, err = one()
		case "tls":
			if len(args) < 2 || len(args) > 3 {
				return d.Errf("netsel tls takes <cert> <key> [<ca>]")
			}
			a.tls().Cert, a.tls().Key = args[0], args[1]
			if len(args) == 3 {
				a.tls().CA = args[2]
			}
		case "tls_ca":
			a.tls().CA, err = one()
		case "dial_timeout":
			a.DialTimeout, err = durationArg(d, opt, args)
		case "vip_proxy":
			if len(args) != 0 {
				return d.ArgErr()
			}
			a.VIPProxy = &VIPProxyConfig{Enabled: true}
			err = a.VIPProxy.unmarshalBlock(d)
		case "health_checks":
			if len(args) != 0 {
				return d.ArgErr()
			}
			a.HealthChecks = new(HealthChecks)
			err = a.HealthChecks.unmarshalBlock(d)
		case "dial_policy":
			if len(args) != 0 {
				return d.ArgErr()
			}
			if a.DialPolicy == nil {
				a.DialPolicy = new(DialPolicy)
			}
			err = a.DialPolicy.unmarshalBlock(d)
		case "zones", "zone":
			if len(args) == 0 {
				return d.Errf("netsel %s needs at least one domain", opt)
			}
			a.Zones = append(a.Zones, args...)
		case "locality":
			a.Locality, err = one()
		default:
			return d.Errf("unrecognized netsel option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *App) tls() *TLSConfig {
	if a.TLS == nil {
		a.TLS = new(TLSConfig)
	}
	return a.TLS
}

func (v *VIPProxyConfig) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		var err error
		switch opt {
		case "dial_timeout":
			v.DialTimeout, err = durationArg(d, opt, args)
		case "bind_retry":
			v.BindRetry, err = durationArg(d, opt, args)
		case "tries":
			v.Tries, err = countArg(d, opt, args)
		case "max_listeners":
			v.MaxListeners, err = countArg(d, opt, args)
		case "max_conns_per_listener":
			v.MaxConnsPerListener, err = countArg(d, opt, args)
		case "max_conns":
			v.MaxConns, err = countArg(d, opt, args)
		case "idle_timeout":
			v.IdleTimeout, err = durationArg(d, opt, args)
		case "header_timeout":
			v.HeaderTimeout, err = durationArg(d, opt, args)
		case "udp_idle_timeout":
			v.UDPIdleTimeout, err = durationArg(d, opt, args)
		case "policy":
			if len(args) != 1 {
				return d.ArgErr()
			}
			v.Policy = args[0]
		default:
			return d.Errf("unrecognized netsel vip_proxy option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *HealthChecks) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		var err error
		switch opt {
		case "interval":
			h.Interval, err = durationArg(d, opt, args)
		case "timeout":
			h.Timeout, err = durationArg(d, opt, args)
		case "fails":
			h.Fails, err = countArg(d, opt, args)
		case "path", "port":
			if len(args) != 1 {
				return d.ArgErr()
			}
			if opt == "path" {
				h.Path = args[0]
			} else {
				h.Port = args[0]
			}
		default:
			return d.Errf("unrecognized netsel health_checks option '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, opt string, args []string) (caddy.Duration, error) {
	if len(args) != 1 {
		return 0, d.Errf("%s takes one duration", opt)
	}
	dur, err := caddy.ParseDuration(args[0])
	if err != nil {
		return 0, d.Errf("bad %s %q: %v", opt, args[0], err)
	}
	return caddy.Duration(dur), nil
}

func countArg(d *caddyfile.Dispenser, opt string, args []string) (int, error) {
	if len(args) != 1 {
		return 0, d.Errf("%s takes one number", opt)
	}
	n, err := parseCount(args[0])
	if err != nil {
		return 0, d.Errf("bad %s %q: %v", opt, args[0], err)
	}
	return n, nil
}

// parseCount parses a positive count.
func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("must be at least 1")
	}
	return n, nil
}

func (p *DialPolicy) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("netsel dial_policy %s needs at least one value", opt)
		}
		switch opt {
		case "vip_cidrs", "vip_cidr":
			p.VIPCIDRs = append(p.VIPCIDRs, args...)
		case "reserved":
			p.Reserved = append(p.Reserved, args...)
		case "allow":
			p.Allow = append(p.Allow, args...)
		case "deny":
			p.Deny = append(p.Deny, args...)
		default:
			return d.Errf("unrecognized netsel dial_policy option '%s'", opt)
		}
	}
	return nil
}
