package caddymodule

import (
	"math/rand/v2"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(WeightedSelection))
}

// WeightedSelection picks an available upstream at random, in proportion to
// the weight of the NetSel instance behind it. Caddy's weighted_round_robin
// reads weights from its own config, by position, so it cannot follow
// instances that come and go; this policy reads them from the catalog.
// Upstreams that are not NetSel instances weigh 1. When the netsel source
// handed a window of a big service's instances (see Upstreams), whose first
// was already chosen by weight, it takes the first available one.
type WeightedSelection struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*WeightedSelection) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.netsel_weighted",
		New: func() caddy.Module { return new(WeightedSelection) },
	}
}

// Provision gets the netsel app.
func (s *WeightedSelection) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	s.app = app
	return nil
}

// Select implements reverseproxy.Selector. When w is the netsel handler's
// writer, the request counts as open to the chosen instance until it ends
// (for the reader report a drain waits on).
func (s *WeightedSelection) Select(pool reverseproxy.UpstreamPool, r *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	name, ok := serviceFromRepl(r)
	if !ok {
		name, _ = s.app.serviceFor(r, "")
	}
	v := s.app.view(name)
	chosen := s.choose(pool, r, v)
	if t, ok := w.(inflight); ok && chosen != nil && v != nil {
		if key, ok := v.keys[chosen.Dial]; ok {
			t.servedBy(key)
		}
	}
	return chosen
}

func (s *WeightedSelection) choose(pool reverseproxy.UpstreamPool, r *http.Request, v *view) *reverseproxy.Upstream {
	if windowed(r) {
		for _, u := range pool {
			if u.Available() {
				return u
			}
		}
		return nil
	}
	var weights map[string]int
	if v != nil {
		weights = v.weights
	}
	// Weighted reservoir sampling over the available upstreams: one pass,
	// no allocation.
	var chosen *reverseproxy.Upstream
	total := 0
	for _, u := range pool {
		if !u.Available() {
			continue
		}
		w := 1
		if weights != nil {
			if x, ok := weights[u.Dial]; ok {
				w = x
			}
		}
		total += w
		if rand.IntN(total) < w {
			chosen = u
		}
	}
	return chosen
}

// serviceFromRepl returns the service the netsel handler or upstream source
// resolved for r, if any.
func serviceFromRepl(r *http.Request) (string, bool) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return "", false
	}
	v, ok := repl.Get(replService)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// windowed reports whether the netsel source handed r a window of its
// service's instances.
func windowed(r *http.Request) bool {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return false
	}
	v, _ := repl.Get(replWindow)
	b, _ := v.(bool)
	return b
}

// UnmarshalCaddyfile sets up the policy from Caddyfile tokens. Syntax:
//
//	lb_policy netsel_weighted
func (s *WeightedSelection) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // policy name
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*WeightedSelection)(nil)
	_ reverseproxy.Selector = (*WeightedSelection)(nil)
	_ caddyfile.Unmarshaler = (*WeightedSelection)(nil)
)
