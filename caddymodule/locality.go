package caddymodule

import "github.com/netsel/netsel/catalog"

// With the app's Locality, the instance zone the proxy runs in, both
// proxies prefer the instances in it: an HTTP request's upstreams (after
// any tag filter) and a VIP connection's candidates are those of the
// locality's instances while any of them is usable — serving by the
// catalog (catalog.Entry.Serving), passing the app's active health checks,
// allowed by the dial policy and, for a VIP, serving the port — and all
// the usable instances when none is. The choice is made once per view
// (a change of the service or of health), never per request; within it,
// weights, windows and retries work as without a locality. Caddy's
// passive health checks (a failed dial) work within the upstreams handed,
// so they do not fall back across zones: the catalog's health does.

// poolOf returns the pool of v's dialable instances for which keep holds:
// those in v's locality when there are any, else all; each in ID order.
func (v *view) poolOf(keep func(*catalog.Instance) bool) *pool {
	all, local := &pool{}, &pool{}
	for i, in := range v.dialInst {
		if !keep(in) {
			continue
		}
		all.add(v.dials[i], in.Weight)
		if v.locality != "" && in.Zone == v.locality {
			local.add(v.dials[i], in.Weight)
		}
	}
	if len(local.dials) > 0 {
		return local
	}
	return all
}

// add appends the dial address d of weight w to p.
func (p *pool) add(d string, w int) {
	p.dials = append(p.dials, d)
	p.cum = append(p.cum, w+sum(p.cum))
}
