// Package netsel is a CoreDNS plugin that answers for NetSel's services from
// a watch-fed, in-memory copy of the etcd keyspace (catalog.Index): service
// VIPs, SRV records of live instances, instance addresses and PTRs for VIPs.
// A query never waits on etcd. See README.md for the Corefile syntax.
package netsel

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// Netsel is the plugin handler of one netsel block.
type Netsel struct {
	Next plugin.Handler
	Fall fall.F
	// Zones are the zones served, lower-case and fully qualified: forward
	// zones and reverse (in-addr.arpa., ip6.arpa.) zones.
	Zones []string

	ttl uint32
	// locality is the instance zone (catalog.Instance.Zone) of this
	// server's clients: SRV answers prefer its instances. Empty: none.
	locality string
	ptrZone  string                  // the zone PTR targets are in
	caches   map[string]*recordCache // per forward zone
	// soaNames are the SOA's name server and mailbox, per zone.
	soaNames map[string]struct{ ns, mbox string }

	shared atomic.Pointer[sharedIndex] // set at startup
}

// setZones sets the zones served and the state kept per zone.
func (n *Netsel) setZones(zones []string) {
	n.Zones = zones
	n.caches = make(map[string]*recordCache, len(zones))
	n.soaNames = make(map[string]struct{ ns, mbox string }, len(zones))
	for _, z := range zones {
		n.soaNames[z] = struct{ ns, mbox string }{dnsutil.Join("ns.dns", z), dnsutil.Join("hostmaster", z)}
		if isReverse(z) {
			continue
		}
		if n.ptrZone == "" {
			n.ptrZone = z
		}
		n.caches[z] = newRecordCache(z, n.ttl, n.locality)
	}
	if n.ptrZone == "" {
		n.ptrZone = DefaultZone
	}
}

// ServeDNS implements plugin.Handler.
func (n *Netsel) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 {
		return dns.RcodeFormatError, nil
	}
	q := r.Question[0]
	// The name as unpacked is in presentation form already; lower-casing
	// it is all request.Request.Name would add, and this allocates only
	// for names with upper case.
	qname := strings.ToLower(q.Name)
	zone := n.match(qname)
	if zone == "" || q.Qclass != dns.ClassINET {
		return plugin.NextOrFailure(n.Name(), n.Next, ctx, w, r)
	}
	qtype := q.Qtype
	server := metrics.WithServer(ctx)

	s := n.shared.Load()
	if s == nil {
		countRequest(server, qtype, resultNotReady)
		return dns.RcodeServerFailure, nil
	}
	snap := s.ix.Snapshot()
	if !snap.Synced() {
		// Until etcd has been read in full, an NXDOMAIN could be false.
		countRequest(server, qtype, resultNotReady)
		return dns.RcodeServerFailure, nil
	}
	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR {
		countRequest(server, qtype, resultRefused)
		return dns.RcodeRefused, nil
	}
	if chain, ok := inspectChain(w); ok {
		if rep := n.answerWire(w, r, snap, zone, qname, qtype); rep != nil {
			// As with WriteMsg, a failed write is the client's loss.
			wrote, err := w.Write(rep.buf)
			chain.record(rep.buf, wrote, err)
			rep.release()
			countRequest(server, qtype, resultAnswer)
			return dns.RcodeSuccess, nil
		}
	}
	return n.serveRegular(ctx, w, r, snap, zone, qname, server)
}

// serveRegular answers r the regular way: lookup, then a dns.Msg through
// WriteMsg. (Apart from ServeDNS, so that ServeDNS's frame, which is on
// the stack under the write of every precomputed reply, holds none of its
// locals.)
func (n *Netsel) serveRegular(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, snap *catalog.Snapshot, zone, qname, server string) (int, error) {
	q := r.Question[0]
	qtype := q.Qtype
	room := 0 // only SRV answers, and a tag name's addresses, are sized here
	if qtype == dns.TypeSRV || qtype == dns.TypeANY || qname[0] == '_' && (qtype == dns.TypeA || qtype == dns.TypeAAAA) {
		opt := r.IsEdns0()
		room = replyRoom(requestSize(isTCP(w), opt), q.Name, opt != nil)
	}
	res := n.lookup(snap, zone, qname, q.Name, qtype, room)
	if res.rcode == dns.RcodeNameError && n.Fall.Through(qname) {
		countRequest(server, qtype, resultFallthrough)
		return plugin.NextOrFailure(n.Name(), n.Next, ctx, w, r)
	}
	countRequest(server, qtype, res.label())

	m := new(dns.Msg)
	m.SetRcode(r, res.rcode)
	m.Authoritative = true
	m.Truncated = res.truncated && !isTCP(w) // over TCP, a sample is the answer
	m.Answer = res.answer
	m.Extra = res.extra
	if res.soa {
		m.Ns = []dns.RR{n.soa(zone, snap)}
	}
	if opt := r.IsEdns0(); opt != nil {
		// The reply's own OPT record, with only the DO bit of the query's
		// flags: CoreDNS's SizeAndDo would copy the query's reserved
		// flag bits, which RFC 6891 says must be zero in replies.
		m.SetEdns0(opt.UDPSize(), opt.Do())
	}
	// The server's ScrubWriter fits m to the client's EDNS0 buffer and sets
	// TC when it has to drop records.
	w.WriteMsg(m)
	return res.rcode, nil
}

// match returns the longest zone that qname (lower-case, fully qualified)
// is in, or "". It is plugin.Zones.Matches without the allocations.
func (n *Netsel) match(qname string) string {
	zone := ""
	for _, z := range n.Zones {
		if len(z) <= len(zone) || !strings.HasSuffix(qname, z) {
			continue
		}
		if len(qname) == len(z) || z == "." || qname[len(qname)-len(z)-1] == '.' {
			zone = z
		}
	}
	return zone
}

// Name implements plugin.Handler.
func (n *Netsel) Name() string { return pluginName }
