// Package netsel is a CoreDNS plugin that answers for NetSel's services from
// a watch-fed, in-memory copy of the etcd keyspace (catalog.Index): service
// VIPs, SRV records of live instances, instance addresses and PTRs for VIPs.
// A query never waits on etcd. See README.md for the Corefile syntax.
package netsel

import (
	"context"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// Netsel is the plugin handler of one netsel block.
type Netsel struct {
	Next plugin.Handler
	Fall fall.F
	// Zones are the zones served, lower-case and fully qualified: forward
	// zones and reverse (in-addr.arpa., ip6.arpa.) zones.
	Zones []string

	ttl     uint32
	ptrZone string                  // the zone PTR targets are in
	caches  map[string]*recordCache // per forward zone

	shared atomic.Pointer[sharedIndex] // set at startup
}

// setZones sets the zones served and the state kept per zone.
func (n *Netsel) setZones(zones []string) {
	n.Zones = zones
	n.caches = make(map[string]*recordCache, len(zones))
	for _, z := range zones {
		if isReverse(z) {
			continue
		}
		if n.ptrZone == "" {
			n.ptrZone = z
		}
		n.caches[z] = newRecordCache(z, n.ttl)
	}
	if n.ptrZone == "" {
		n.ptrZone = DefaultZone
	}
}

// ServeDNS implements plugin.Handler.
func (n *Netsel) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	if len(r.Question) != 1 {
		return dns.RcodeFormatError, nil
	}
	qname := state.Name()
	zone := plugin.Zones(n.Zones).Matches(qname)
	if zone == "" || state.QClass() != dns.ClassINET {
		return plugin.NextOrFailure(n.Name(), n.Next, ctx, w, r)
	}
	qtype := state.QType()
	server := metrics.WithServer(ctx)

	s := n.shared.Load()
	if s == nil || !s.ix.Snapshot().Synced() {
		countRequest(server, qtype, resultNotReady)
		return dns.RcodeServerFailure, nil
	}
	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR {
		countRequest(server, qtype, resultRefused)
		return dns.RcodeRefused, nil
	}
	snap := s.ix.Snapshot()
	res := n.lookup(snap, zone, qname, state.QName(), qtype)
	if res.rcode == dns.RcodeNameError && n.Fall.Through(qname) {
		countRequest(server, qtype, resultFallthrough)
		return plugin.NextOrFailure(n.Name(), n.Next, ctx, w, r)
	}
	countRequest(server, qtype, res.label())

	m := new(dns.Msg)
	m.SetRcode(r, res.rcode)
	m.Authoritative = true
	m.Answer = res.answer
	m.Extra = res.extra
	if res.soa {
		m.Ns = []dns.RR{n.soa(zone, snap)}
	}
	// The server's ScrubWriter fits m to the client's EDNS0 buffer and sets
	// TC when it has to drop records.
	w.WriteMsg(m)
	return res.rcode, nil
}

// Name implements plugin.Handler.
func (n *Netsel) Name() string { return pluginName }
