package netsel

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	mwtls "github.com/coredns/coredns/plugin/pkg/tls"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/etcdendpoint"
)

const pluginName = "netsel"

var log = clog.NewWithPlugin(pluginName)

// Defaults of the Corefile block.
const (
	// DefaultEndpoint is the etcd client URL used when none is configured:
	// the one-machine runner's embedded etcd.
	DefaultEndpoint = "http://127.0.0.1:2379"
	// DefaultZone is served when the block names no zone and sits in a root
	// (".") server block.
	DefaultZone = "netsel."
	// DefaultTTL is the TTL, in seconds, of every record served.
	DefaultTTL = 5
	// MaxTTL is the largest TTL accepted.
	MaxTTL = 86400
)

func init() {
	plugin.Register(pluginName, setup)
	addDirective(pluginName, "etcd")
}

// addDirective inserts name into CoreDNS's plugin order right before the
// directive before, or at the end when before is absent, unless it is
// already there. Caddy reads dnsserver.Directives when it loads a Corefile,
// so importing this package is enough to make "netsel" usable.
func addDirective(name, before string) {
	if slices.Contains(dnsserver.Directives, name) {
		return
	}
	i := slices.Index(dnsserver.Directives, before)
	if i < 0 {
		i = len(dnsserver.Directives)
	}
	dnsserver.Directives = slices.Insert(slices.Clone(dnsserver.Directives), i, name)
}

func setup(c *caddy.Controller) error {
	n, cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}

	c.OnStartup(func() error {
		s, err := acquireIndex(cfg)
		if err != nil {
			return plugin.Error(pluginName, err)
		}
		s.noteTTL(n.ttl)
		n.shared.Store(s)
		return nil
	})
	c.OnShutdown(func() error {
		if s := n.shared.Swap(nil); s != nil {
			s.release()
		}
		return nil
	})

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		n.Next = next
		return n
	})
	return nil
}

// parse reads one netsel block:
//
//	netsel [ZONES...] {
//	    endpoint URL...
//	    prefix PREFIX
//	    ttl SECONDS
//	    tls [CERT KEY] [CA]
//	    username USER
//	    password PASSWORD
//	    credentials USER PASSWORD
//	    fallthrough [ZONES...]
//	    locality ZONE
//	}
func parse(c *caddy.Controller) (*Netsel, indexConfig, error) {
	config := dnsserver.GetConfig(c)
	cfg := indexConfig{Endpoints: []string{DefaultEndpoint}, Prefix: catalog.DefaultPrefix}
	var zones []string
	n := &Netsel{ttl: DefaultTTL}

	i := 0
	for c.Next() {
		if i > 0 {
			return nil, cfg, plugin.ErrOnce
		}
		i++

		args := c.RemainingArgs()
		for _, a := range args {
			if len(plugin.Host(a).NormalizeExact()) == 0 {
				return nil, cfg, c.Errf("zone %q is not a valid domain name or CIDR", a)
			}
		}
		zones = plugin.OriginsFromArgsOrServerBlock(args, c.ServerBlockKeys)
		if len(args) == 0 {
			// In a root block, serve the default zone rather than everything.
			for i, z := range zones {
				if z == "." {
					zones[i] = DefaultZone
				}
			}
		}

		for c.NextBlock() {
			switch opt := c.Val(); opt {
			case "endpoint":
				eps := c.RemainingArgs()
				if len(eps) == 0 {
					return nil, cfg, c.Errf("endpoint needs at least one URL")
				}
				for _, ep := range eps {
					if err := etcdendpoint.Check(ep); err != nil {
						return nil, cfg, c.Errf("endpoint %q: %v", ep, err)
					}
				}
				cfg.Endpoints = eps
			case "prefix":
				if !c.NextArg() {
					return nil, cfg, c.Errf("prefix needs a value such as %s", catalog.DefaultPrefix)
				}
				if _, err := catalog.NewKeyspace(c.Val()); err != nil {
					return nil, cfg, c.Errf("prefix: %v", err)
				}
				cfg.Prefix = c.Val()
				if c.NextArg() {
					return nil, cfg, c.Errf("prefix takes one value")
				}
			case "ttl":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, cfg, c.Errf("ttl needs one value, in seconds")
				}
				ttl, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil || ttl > MaxTTL {
					return nil, cfg, c.Errf("ttl %q is not a number of seconds in 0-%d", args[0], MaxTTL)
				}
				n.ttl = uint32(ttl)
			case "tls": // [cert key] [ca]
				args := c.RemainingArgs()
				if len(args) == 0 || len(args) > 3 {
					return nil, cfg, c.Errf("tls takes CERT KEY [CA] or CA")
				}
				for i := range args {
					if !filepath.IsAbs(args[i]) && config.Root != "" {
						args[i] = filepath.Join(config.Root, args[i])
					}
				}
				tc, err := mwtls.NewTLSConfigFromArgs(args...)
				if err != nil {
					return nil, cfg, c.Errf("tls: %v", err)
				}
				cfg.TLS, cfg.TLSArgs = tc, fmt.Sprint(args)
			case "username", "password":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, cfg, c.Errf("%s takes one value", opt)
				}
				if opt == "username" {
					cfg.Username = args[0]
				} else {
					cfg.Password = args[0]
				}
			case "credentials":
				args := c.RemainingArgs()
				if len(args) != 2 {
					return nil, cfg, c.Errf("credentials takes USER PASSWORD")
				}
				cfg.Username, cfg.Password = args[0], args[1]
			case "fallthrough":
				n.Fall.SetZonesFromArgs(c.RemainingArgs())
			case "locality":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, cfg, c.Errf("locality takes one instance zone")
				}
				if err := catalog.CheckName("locality", args[0]); err != nil {
					return nil, cfg, c.Errf("%v", err)
				}
				n.locality = args[0]
			default:
				return nil, cfg, c.Errf("unknown option '%s'", opt)
			}
		}
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, cfg, c.Errf("username and password must be given together")
	}
	n.setZones(zones)
	return n, cfg, nil
}

// indexConfig says which etcd and keyspace an index reads. Blocks with equal
// configs share one index.
type indexConfig struct {
	Endpoints          []string
	Prefix             string
	Username, Password string
	TLS                *tls.Config
	TLSArgs            string // identifies TLS in the sharing key
}
