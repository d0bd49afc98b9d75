package caddymodule

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/netsel/netsel/addrpolicy"

	"github.com/netsel/netsel/catalog"
)

// replService is the placeholder that names the service of an HTTP request
// once the netsel handler or upstream source has resolved it.
const replService = "http.netsel.service"

// replHopMarked is set once the netsel handler has added the app to a
// request's Via header, so that the upstream source does not take its own
// mark for a loop.
const replHopMarked = "http.netsel.hop_marked"

// view is what the modules serve for one service: its healthy instances,
// derived from one catalog entry and one health state and cached until
// either changes, so a request that finds nothing changed computes nothing.
type view struct {
	entry  *catalog.Entry
	health *healthState
	// vipsRev and policy are the catalog's VIPs revision and the dial
	// policy the view was checked against.
	vipsRev int64
	policy  *addrpolicy.Policy

	// instances are the healthy instances, sorted by ID.
	instances []*catalog.Instance
	// dials are "address:port" of each instance's main port, in the same
	// order, less those the dial policy refuses; dialInst their instances.
	dials    []string
	dialInst []*catalog.Instance
	// locality is the app's Locality; served is the part of dials new
	// requests go to: those of instances in the locality when there are
	// any, else all of them (see poolOf).
	locality string
	served   *pool
	// tagPools are the parts of dials that carry a set of tags.
	tagPools tagPools
	// weights maps each dial address to its instance's weight, keys to
	// its catalog.ConnectionKey.
	weights map[string]int
	keys    map[string]string
	// http2 holds the dial addresses whose port carries h2c or grpc,
	// which the netsel transport reaches over HTTP/2 cleartext.
	http2 map[string]bool
	// byPort holds, for each port name of the service, the instances that
	// serve it, for the layer-4 proxies.
	byPort map[string][]candidate
	// refused counts the healthy instance ports the dial policy refuses;
	// allowed says whether an address:port may be dialled.
	refused int
	allowed func(netip.AddrPort) bool
}

// viewCache holds the last view of each service that was asked for.
type viewCache struct {
	m sync.Map // service name -> *view
}

// view returns the current view of service name, or nil when the service is
// unknown. The view may hold no instances.
func (a *App) view(name string) *view {
	snap := a.index.Snapshot()
	e, ok := snap.Service(name)
	if !ok {
		a.views.m.Delete(name)
		return nil
	}
	hs := a.health.state()
	if v, ok := a.views.m.Load(name); ok {
		if v := v.(*view); v.entry == e && v.health == hs && v.vipsRev == snap.VIPsRevision() && v.policy == a.policy.Load() {
			return v
		}
	}
	v := a.newView(snap, e, hs)
	a.views.m.Store(name, v)
	return v
}

// newView builds the view of e: its healthy instances, less the addresses
// the dial policy refuses, which are logged once per view.
func (a *App) newView(snap *catalog.Snapshot, e *catalog.Entry, hs *healthState) *view {
	v := &view{
		entry:     e,
		health:    hs,
		vipsRev:   snap.VIPsRevision(),
		policy:    a.policy.Load(),
		locality:  a.Locality,
		instances: make([]*catalog.Instance, 0, e.Len()),
		weights:   make(map[string]int, e.Len()),
		keys:      make(map[string]string, e.Len()),
	}
	var (
		refusals []string
		cum      []int
	)
	v.allowed = func(ap netip.AddrPort) bool {
		err := a.dialRefused(snap, v.policy, ap)
		if err != nil {
			v.refused++
			if len(refusals) < 10 {
				refusals = append(refusals, err.Error())
			}
		}
		return err == nil
	}
	for _, in := range e.Serving() {
		if !hs.healthy(e.Name, in.ID) {
			continue
		}
		v.instances = append(v.instances, in)
		ap := netip.AddrPortFrom(in.Address, uint16(in.Port))
		if !v.allowed(ap) {
			continue
		}
		d := ap.String()
		v.dials = append(v.dials, d)
		v.dialInst = append(v.dialInst, in)
		v.weights[d] = in.Weight
		v.keys[d] = catalog.ConnectionKey(in.Service, in.ID)
		if p, ok := e.Service.MainPort(in); ok && p.HTTP2() {
			if v.http2 == nil {
				v.http2 = map[string]bool{}
			}
			v.http2[d] = true
		}
		cum = append(cum, in.Weight+sum(cum))
	}
	v.served = &pool{dials: v.dials, cum: cum}
	if v.locality != "" {
		v.served = v.poolOf(func(*catalog.Instance) bool { return true })
	}
	if e.Service != nil {
		v.byPort = make(map[string][]candidate, len(e.Service.Ports))
		for _, p := range e.Service.Ports {
			v.byPort[p.Name] = candidates(v, p.Name)
		}
	}
	if v.refused > 0 && a.logger != nil {
		a.logger.Warn("instances left out: the dial policy refuses their addresses",
			zap.String("service", e.Name), zap.Int("refused", v.refused), zap.Strings("why", refusals))
	}
	// Ports looked up later (not in byPort) are checked as they are found,
	// against the catalog's VIPs then; they are not counted or logged. The
	// check holds no snapshot: a view lives as long as its service's entry
	// is unchanged, and a snapshot it held would keep every other
	// service's entry of that time alive with it.
	policy := v.policy
	v.allowed = func(ap netip.AddrPort) bool { return a.dialRefused(a.index.Snapshot(), policy, ap) == nil }
	return v
}

// sum is the last running sum of cum, or 0.
func sum(cum []int) int {
	if len(cum) == 0 {
		return 0
	}
	return cum[len(cum)-1]
}

// weightedPosition returns a position in cum, running sums of weights,
// chosen at random in proportion to its weight: O(log n).
func weightedPosition(cum []int) int {
	total := sum(cum)
	if total <= 0 {
		return rand.IntN(len(cum))
	}
	x := rand.IntN(total)
	i, _ := slices.BinarySearch(cum, x+1) // the first running sum above x
	return i
}
