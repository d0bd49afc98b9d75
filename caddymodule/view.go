package caddymodule

import (
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/netsel/netsel/catalog"
)

// replService is the placeholder that names the service of an HTTP request
// once the netsel handler or upstream source has resolved it.
const replService = "http.netsel.service"

// view is what the modules serve for one service: its healthy instances,
// derived from one catalog entry and one health state and cached until
// either changes, so a request that finds nothing changed computes nothing.
type view struct {
	entry  *catalog.Entry
	health *healthState

	// instances are the healthy instances, sorted by ID.
	instances []*catalog.Instance
	// dials are "address:port" of each instance's main port, in the same order.
	dials []string
	// weights maps each dial address to its instance's weight.
	weights map[string]int
	// cum holds the running sums of the weights, in the order of dials:
	// cum[i] is the weight of instances 0 to i.
	cum []int
	// byPort holds, for each port name of the service, the instances that
	// serve it, for the layer-4 proxies.
	byPort map[string][]candidate
}

// viewCache holds the last view of each service that was asked for.
type viewCache struct {
	m sync.Map // service name -> *view
}

// view returns the current view of service name, or nil when the service is
// unknown. The view may hold no instances.
func (a *App) view(name string) *view {
	e, ok := a.index.Snapshot().Service(name)
	if !ok {
		a.views.m.Delete(name)
		return nil
	}
	hs := a.health.state()
	if v, ok := a.views.m.Load(name); ok {
		if v := v.(*view); v.entry == e && v.health == hs {
			return v
		}
	}
	v := newView(e, hs)
	a.views.m.Store(name, v)
	return v
}

func newView(e *catalog.Entry, hs *healthState) *view {
	v := &view{
		entry:     e,
		health:    hs,
		instances: make([]*catalog.Instance, 0, e.Len()),
		weights:   make(map[string]int, e.Len()),
	}
	for _, in := range e.Instances() {
		if !hs.healthy(e.Name, in.ID) {
			continue
		}
		d := net.JoinHostPort(in.Address.String(), strconv.Itoa(in.Port))
		v.instances = append(v.instances, in)
		v.dials = append(v.dials, d)
		v.weights[d] = in.Weight
		v.cum = append(v.cum, in.Weight+sum(v.cum))
	}
	if e.Service != nil {
		v.byPort = make(map[string][]candidate, len(e.Service.Ports))
		for _, p := range e.Service.Ports {
			v.byPort[p.Name] = candidates(v, p.Name)
		}
	}
	return v
}

// sum is the last running sum of cum, or 0.
func sum(cum []int) int {
	if len(cum) == 0 {
		return 0
	}
	return cum[len(cum)-1]
}

// weightedPosition returns the position in v.dials of an instance chosen at
// random in proportion to its weight: O(log n).
func (v *view) weightedPosition() int {
	total := sum(v.cum)
	if total <= 0 {
		return rand.IntN(len(v.dials))
	}
	x := rand.IntN(total)
	i, _ := slices.BinarySearch(v.cum, x+1) // the first running sum above x
	return i
}

// serviceFor names the service an HTTP request is for: the first DNS label
// of the configured template with placeholders replaced when it is set, else
// of the request's host; lower-cased. It returns "" when that is not a valid
// service name.
func serviceFor(r *http.Request, template string) string {
	s := r.Host
	if template != "" {
		s = template
		if strings.IndexByte(template, '{') >= 0 {
			repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			if repl != nil {
				s = repl.ReplaceAll(template, "")
			}
		}
	}
	name := strings.ToLower(firstLabel(s))
	if !catalog.ValidName(name) {
		return ""
	}
	return name
}

// firstLabel returns the first DNS label of host, which may carry a port.
func firstLabel(host string) string {
	if strings.HasPrefix(host, "[") { // an IPv6 literal has no labels
		return ""
	}
	if i := strings.IndexAny(host, ".:"); i >= 0 {
		return host[:i]
	}
	return host
}
