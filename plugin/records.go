package netsel

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// records are the resource records of one service in one zone, built once
// per *catalog.Entry (an unchanged entry keeps its pointer from snapshot to
// snapshot) and never modified after. Answers copy them before use, since
// plugins later in the chain may rewrite records in place.
type records struct {
	name string   // <svc>.<zone>
	vip  addrRR   // the service VIP, zero without a service record
	inst []instRR // parallel to Entry.Instances
	// ports holds the SRV set of each named port, keyed "<port>.<proto>".
	ports  map[string][]srvRR
	protos map[string]bool // protocols with at least one port
	def    []srvRR         // the SRV set of <svc>: every instance's main port

	// serving are the instances of def, in its order (by ID; with a
	// locality, its instances first: see buildRecords); tagged says
	// whether any of them carries a tag. tags indexes them by tag, built
	// on the first tag question (see withTags).
	serving []*catalog.Instance
	tagged  bool
	tags    struct {
		once sync.Once
		m    map[string][]int32 // catalog.TagKey -> ascending positions in def
	}
}

// addrRR is an A or an AAAA record; at most one is set. wire is the record
// packed for answerWire: owned by the question's name for a service VIP,
// by its own name for an instance's address (SRV glue).
type addrRR struct {
	a    *dns.A
	aaaa *dns.AAAA
	wire []byte
}

func newAddrRR(name string, ttl uint32, ip netip.Addr) addrRR {
	if !ip.IsValid() {
		return addrRR{}
	}
	if ip.Is4() || ip.Is4In6() {
		return addrRR{a: &dns.A{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   net.IP(ip.Unmap().AsSlice()),
		}}
	}
	return addrRR{aaaa: &dns.AAAA{
		Hdr:  dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
		AAAA: net.IP(ip.AsSlice()),
	}}
}

// withWire returns r with its wire form set; see addrRR.
func (r addrRR) withWire(ownerIsQuestion bool) addrRR {
	switch {
	case r.a != nil:
		r.wire = packRR(r.a, ownerIsQuestion)
	case r.aaaa != nil:
		r.wire = packRR(r.aaaa, ownerIsQuestion)
	}
	return r
}

// qtype is the record type of r, or 0 when r is empty.
func (r addrRR) qtype() uint16 {
	switch {
	case r.a != nil:
		return dns.TypeA
	case r.aaaa != nil:
		return dns.TypeAAAA
	}
	return 0
}

// key is r's address as a map key.
func (r addrRR) key() string {
	switch {
	case r.a != nil:
		return string(r.a.A)
	case r.aaaa != nil:
		return string(r.aaaa.AAAA)
	}
	return ""
}

// copyAs returns a copy of r owned by name, or nil when r is empty.
func (r addrRR) copyAs(name string) dns.RR {
	switch {
	case r.a != nil:
		c := *r.a
		c.Hdr.Name = name
		return &c
	case r.aaaa != nil:
		c := *r.aaaa
		c.Hdr.Name = name
		return &c
	}
	return nil
}

// instRR are the records of one instance: its address under <id>.<svc>.<zone>.
type instRR struct {
	addr addrRR
}

// srvRR is one SRV record, the index of its target's instance, the record
// packed for answerWire, owned by the question's name, and its glue: the
// target's address record packed, or nil.
type srvRR struct {
	srv  *dns.SRV
	inst int
	wire []byte
	glue []byte
}

// Priorities of SRV records. Without a locality every instance has
// srvPriority: all are equally preferred and weights share the load. With
// one, the instances in it keep srvPriority and the others get
// srvPriorityRemote: RFC 2782 clients try them only when no instance of the
// locality answers.
const (
	srvPriority       = 10
	srvPriorityRemote = 20
)

// buildRecords builds the records of e in zone. With a locality (the
// reader's instance zone, catalog.Instance.Zone), every SRV set lists the
// instances in it first, each part by ID, and gives the others
// srvPriorityRemote: pickSRV relies on a set being sorted by priority.
func buildRecords(e *catalog.Entry, zone string, ttl uint32, locality string) *records {
	// Every instance keeps its own name (<id>.<svc>); SRV answers list the
	// ones traffic goes to.
	all, serving := e.Instances(), e.Serving()
	rs := &records{name: e.Name + "." + zone, inst: make([]instRR, len(all))}
	srv := func(target string, port, weight, inst int) srvRR {
		priority := uint16(srvPriority)
		if locality != "" && all[inst].Zone != locality {
			priority = srvPriorityRemote
		}
		rr := &dns.SRV{
			Hdr:      dns.RR_Header{Name: rs.name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
			Priority: priority,
			Weight:   uint16(min(max(weight, 0), catalog.MaxWeight)),
			Port:     uint16(port),
			Target:   target,
		}
		return srvRR{srv: rr, inst: inst, wire: packRR(rr, true)}
	}
	targets := make([]string, len(all))
	for i, in := range all {
		targets[i] = in.ID + "." + rs.name
		rs.inst[i] = instRR{addr: newAddrRR(targets[i], ttl, in.Address).withWire(false)}
	}
	// pos[k] is the position in all of serving[k], a subsequence of all.
	pos := make([]int, len(serving))
	for k, i := 0, 0; k < len(serving); i++ {
		if all[i] == serving[k] {
			pos[k] = i
			k++
		}
	}
	serving, pos = localFirst(serving, pos, locality)
	rs.serving = serving
	for k, in := range serving {
		rs.def = append(rs.def, srv(targets[pos[k]], in.Port, in.Weight, pos[k]))
		rs.tagged = rs.tagged || len(in.Tags) > 0
	}
	if e.Service != nil {
		rs.vip = newAddrRR(rs.name, ttl, e.Service.VIP).withWire(true)
		rs.ports = make(map[string][]srvRR, len(e.Service.Ports))
		rs.protos = make(map[string]bool, 2)
		for _, p := range e.Service.Ports {
			rs.protos[p.Transport()] = true
			var set []srvRR
			for k, in := range serving {
				if port, ok := in.PortFor(p.Name); ok {
					set = append(set, srv(targets[pos[k]], port, in.Weight, pos[k]))
				}
			}
			rs.ports[p.Name+"."+p.Transport()] = compactSRV(set, rs.inst)
		}
	}
	rs.def = compactSRV(rs.def, rs.inst)
	return rs
}

// localFirst returns serving and pos (parallel) with the instances whose
// zone is locality moved first, both parts keeping their order; as they
// are without a locality.
func localFirst(serving []*catalog.Instance, pos []int, locality string) ([]*catalog.Instance, []int) {
	if locality == "" {
		return serving, pos
	}
	s := make([]*catalog.Instance, 0, len(serving))
	p := make([]int, 0, len(pos))
	for k, in := range serving {
		if in.Zone == locality {
			s, p = append(s, in), append(p, pos[k])
		}
	}
	for k, in := range serving {
		if in.Zone != locality {
			s, p = append(s, in), append(p, pos[k])
		}
	}
	return s, p
}

// compactSRV gives each record of set its glue (its target's address record
// in wire form, from inst) and moves every record's wire form and glue into
// one array, in order, record then glue: a window of a big set then reads
// one stretch of memory. It returns set.
func compactSRV(set []srvRR, inst []instRR) []srvRR {
	total := 0
	for _, s := range set {
		total += len(s.wire) + len(inst[s.inst].addr.wire)
	}
	buf := make([]byte, 0, total)
	for i := range set {
		if w := set[i].wire; w != nil {
			start := len(buf)
			buf = append(buf, w...)
			set[i].wire = buf[start:len(buf):len(buf)]
		}
		if g := inst[set[i].inst].addr.wire; g != nil {
			start := len(buf)
			buf = append(buf, g...)
			set[i].glue = buf[start:len(buf):len(buf)]
		}
	}
	return set
}

// recordCache maps the entries of the current snapshot to their records. It
// keeps the records of the snapshot before it, so entries that did not change
// are not rebuilt, and drops older ones.
type recordCache struct {
	zone     string
	ttl      uint32
	locality string
	cur      atomic.Pointer[generation]
}

type generation struct {
	snap *catalog.Snapshot
	m    *sync.Map // *catalog.Entry -> *records
	prev *sync.Map // the previous generation's m, or nil
}

func newRecordCache(zone string, ttl uint32, locality string) *recordCache {
	return &recordCache{zone: zone, ttl: ttl, locality: locality}
}

// get returns the records of e, an entry of snap.
func (c *recordCache) get(snap *catalog.Snapshot, e *catalog.Entry) *records {
	g := c.cur.Load()
	if g != nil && g.snap != snap && snap.Revision() < g.snap.Revision() {
		// A query still holding an older snapshot: do not roll the cache back.
		return buildRecords(e, c.zone, c.ttl, c.locality)
	}
	if g == nil || g.snap != snap {
		next := &generation{snap: snap, m: new(sync.Map)}
		if g != nil {
			next.prev = g.m
		}
		if c.cur.CompareAndSwap(g, next) {
			g = next
		} else if g = c.cur.Load(); g.snap != snap {
			// Another snapshot raced in; build without caching.
			return buildRecords(e, c.zone, c.ttl, c.locality)
		}
	}
	if v, ok := g.m.Load(e); ok {
		return v.(*records)
	}
	if g.prev != nil {
		if v, ok := g.prev.Load(e); ok {
			g.m.Store(e, v)
			return v.(*records)
		}
	}
	rs := buildRecords(e, c.zone, c.ttl, c.locality)
	g.m.Store(e, rs)
	return rs
}
