package netsel

import (
	"net/netip"

	"github.com/coredns/coredns/plugin/pkg/dnsutil"
	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// result is the reply to one question, before it is put in a message.
type result struct {
	rcode     int
	answer    []dns.RR
	extra     []dns.RR
	soa       bool // put the zone's SOA in the authority section
	truncated bool // the answer is a part of the set: set TC
}

var (
	nxdomain = result{rcode: dns.RcodeNameError, soa: true}
	nodata   = result{rcode: dns.RcodeSuccess, soa: true}
)

func answer(rrs ...dns.RR) result { return result{rcode: dns.RcodeSuccess, answer: rrs} }

// lookup answers qtype for qname (lower-case) in zone from snap alone.
// owner is the name as asked, which owns the records of the answer; room is
// the room the reply has for its answer and additional sections (see
// replyRoom).
func (n *Netsel) lookup(snap *catalog.Snapshot, zone, qname, owner string, qtype uint16, room int) result {
	if qname == zone {
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			soa := n.soa(zone, snap)
			soa.Hdr.Name = owner
			return answer(soa)
		}
		return nodata
	}
	if isReverse(zone) {
		return n.lookupPTR(snap, qname, owner, qtype)
	}
	c := n.caches[zone]
	nm := parseName(qname, zone)
	switch nm.kind {
	case nameService:
		e, ok := snap.Service(nm.service)
		if !ok {
			return nxdomain
		}
		rs := c.get(snap, e)
		switch qtype {
		case dns.TypeA, dns.TypeAAAA:
			if rs.vip.qtype() == qtype {
				return answer(rs.vip.copyAs(owner))
			}
		case dns.TypeSRV:
			return srvAnswer(rs, rs.def, owner, room)
		case dns.TypeANY: // RFC 8482: one RRset is enough
			if rr := rs.vip.copyAs(owner); rr != nil {
				return answer(rr)
			}
			return srvAnswer(rs, rs.def, owner, room)
		}
		return nodata
	case nameInstance:
		e, ok := snap.Service(nm.service)
		if !ok {
			return nxdomain
		}
		i, ok := e.Position(nm.id)
		if !ok {
			return nxdomain
		}
		addr := c.get(snap, e).inst[i].addr
		if qtype == addr.qtype() || qtype == dns.TypeANY {
			return answer(addr.copyAs(owner))
		}
		return nodata
	case nameProto:
		if e, ok := snap.Service(nm.service); ok && c.get(snap, e).protos[nm.proto] {
			return nodata // an empty non-terminal
		}
		return nxdomain
	case nameTagRoot:
		if e, ok := snap.Service(nm.service); ok && c.get(snap, e).tagged {
			return nodata // an empty non-terminal above the tag names
		}
		return nxdomain
	case nameTag:
		e, ok := snap.Service(nm.service)
		if !ok {
			return nxdomain
		}
		return lookupTags(c.get(snap, e), nm, owner, qtype, room)
	case namePort:
		e, ok := snap.Service(nm.service)
		if !ok {
			return nxdomain
		}
		rs := c.get(snap, e)
		set, ok := rs.ports[nm.port+"."+nm.proto]
		if !ok {
			return nxdomain
		}
		if qtype == dns.TypeSRV || qtype == dns.TypeANY {
			return srvAnswer(rs, set, owner, room)
		}
		return nodata
	}
	return nxdomain
}

// srvAnswer returns the records of set that pickSRV chooses for room, owned
// by owner, with the targets' addresses in the additional section.
func srvAnswer(rs *records, set []srvRR, owner string, room int) result {
	if len(set) == 0 {
		return nodata
	}
	pick := pickSRV(set, room, make([]int, 0, min(len(set), max(room, 0)/minSRVLen+1)))
	srvs := make([]dns.SRV, len(pick.order))
	res := result{
		rcode:     dns.RcodeSuccess,
		answer:    make([]dns.RR, len(srvs)),
		extra:     make([]dns.RR, 0, len(srvs)),
		truncated: pick.sampled,
	}
	for k, i := range pick.order {
		srvs[k] = *set[i].srv
		srvs[k].Hdr.Name = owner
		res.answer[k] = &srvs[k]
		if rr := rs.inst[set[i].inst].addr.copyAs(srvs[k].Target); rr != nil {
			res.extra = append(res.extra, rr)
		}
	}
	return res
}

// lookupPTR answers a name of a reverse zone: a VIP maps to its service.
func (n *Netsel) lookupPTR(snap *catalog.Snapshot, qname, owner string, qtype uint16) result {
	ip, err := netip.ParseAddr(dnsutil.ExtractAddressFromReverse(qname))
	if err != nil {
		// A name above VIPs (RFC 8020: an empty non-terminal) is NODATA:
		// an NXDOMAIN there would hide every VIP below it from resolvers
		// that minimise query names.
		if p, ok := reversePrefix(qname); ok && hasVIPIn(snap, p) {
			return nodata
		}
		return nxdomain
	}
	e, ok := snap.ByVIP(ip)
	if !ok {
		return nxdomain
	}
	if qtype != dns.TypePTR && qtype != dns.TypeANY {
		return nodata
	}
	return answer(&dns.PTR{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: n.ttl},
		Ptr: e.Name + "." + n.ptrZone,
	})
}

// soa returns the SOA record of zone; its serial is the snapshot's revision.
func (n *Netsel) soa(zone string, snap *catalog.Snapshot) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: n.ttl},
		Ns:      n.soaNames[zone].ns,
		Mbox:    n.soaNames[zone].mbox,
		Serial:  uint32(snap.Revision()),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  n.ttl,
	}
}
