package netsel

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// localityBlock is defaultBlock with the locality az1.
const localityBlock = `netsel netsel. 127.77.0.0/16 {
        endpoint %s
        ttl 7
        locality az1
    }`

// TestLocality asks real CoreDNS servers for the SRV sets of a service with
// instances in two zones (and one in none), over UDP and TCP: a server with
// the locality az1 answering in wire form, one with regularFront (the
// regular path), and one without a locality. With it, az1's instances
// have priority 10 and come first in the answer, the others 20 — in the
// default set, a named port's set and a tag's set; without it, every
// priority is 10, as before. When az1's instances stop serving (critical,
// maintenance, gone), the others are answered; when they serve again,
// they are preferred again.
func TestLocality(t *testing.T) {
	e := startEnv(t, localityBlock, "")
	regular, regularTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(localityBlock, e.etcd.URL), regularFront))
	plainUDP, plainTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, e.etcd.URL), ""))

	e.putService(t, "web", "127.77.0.1",
		catalog.Port{Name: catalog.DefaultPortName, Port: 80, Protocol: "tcp"},
		catalog.Port{Name: "http", Port: 80, Protocol: "tcp"})
	zoned := func(id, addr, zone string, tags ...string) *catalog.Instance {
		in := inst("web", id, addr, 8080)
		in.Zone, in.Tags = zone, tags
		return in
	}
	for _, in := range []*catalog.Instance{
		zoned("a", "127.0.0.10", "az2", "v2"),
		zoned("b", "127.0.0.11", "az1"),
		zoned("c", "127.0.0.12", "az2"),
		zoned("d", "127.0.0.13", "az1", "v2"),
		zoned("e", "127.0.0.14", ""),
	} {
		e.putInstance(t, in, 0)
	}
	side := func(key string, v any) int64 {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return e.put(t, key, string(b))
	}
	servers := []struct{ name, udp, tcp string }{{"wire", e.udp, e.tcp}, {"regular", regular, regularTCP}, {"no locality", plainUDP, plainTCP}}
	// check asks each name of every server over UDP and TCP, once its
	// answers hold the instances of want (id:priority, in answer order up
	// to the order within a priority), or fails.
	check := func(step string, names map[string][2]string) {
		t.Helper()
		for _, s := range servers {
			for qname, want := range names {
				w := want[0]
				if s.name == "no locality" {
					w = want[1]
				}
				for _, proto := range []string{"udp", "tcp"} {
					addr := s.udp
					if proto == "tcp" {
						addr = s.tcp
					}
					var got string
					testenv.Eventually(t, 10*time.Second, func() bool {
						m := query(t, addr, proto, qname, dns.TypeSRV)
						got = priorities(m)
						return got == w && len(m.Extra) == len(m.Answer)
					}, "%s: %s SRV from %s over %s: %q, want %q", step, qname, s.name, proto, lazy(func() string { return got }), w)
					// The order within a priority is shuffled, the
					// priorities in order in every answer.
					for range 20 {
						m := query(t, addr, proto, qname, dns.TypeSRV)
						if !inPriorityOrder(m) {
							t.Fatalf("%s: %s SRV from %s over %s: not in priority order:\n%v", step, qname, s.name, proto, m)
						}
					}
				}
			}
		}
	}
	check("two zones", map[string][2]string{
		"web.netsel.":            {"b:10,d:10,a:20,c:20,e:20", "a:10,b:10,c:10,d:10,e:10"},
		"_http._tcp.web.netsel.": {"b:10,d:10,a:20,c:20,e:20", "a:10,b:10,c:10,d:10,e:10"},
		"_v2._tag.web.netsel.":   {"d:10,a:20", "a:10,d:10"},
	})

	// az1 stops serving: b critical (the others pass), d in maintenance.
	side(e.ks.HealthKey("web", "b"), &catalog.Health{State: catalog.StateCritical})
	side(e.ks.MaintenanceKey("web", "d"), &catalog.Maintenance{Reason: "disk"})
	check("az1 down", map[string][2]string{
		"web.netsel.":          {"a:20,c:20,e:20", "a:10,c:10,e:10"},
		"_v2._tag.web.netsel.": {"a:20", "a:10"},
	})

	// d serves again; b is gone.
	e.del(t, e.ks.MaintenanceKey("web", "d"))
	e.del(t, e.ks.InstanceKey("web", "b"))
	check("d back", map[string][2]string{
		"web.netsel.":          {"d:10,a:20,c:20,e:20", "a:10,c:10,d:10,e:10"},
		"_v2._tag.web.netsel.": {"d:10,a:20", "a:10,d:10"},
	})
}

// priorities is m's SRV answer as "id:priority", by priority then id.
func priorities(m *dns.Msg) string {
	type rec struct {
		id string
		p  uint16
	}
	var rs []rec
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			rs = append(rs, rec{strings.TrimSuffix(srv.Target, ".web.netsel."), srv.Priority})
		}
	}
	var s []string
	for len(rs) > 0 {
		best := 0
		for i, r := range rs {
			if r.p < rs[best].p || r.p == rs[best].p && r.id < rs[best].id {
				best = i
			}
		}
		s = append(s, fmt.Sprintf("%s:%d", rs[best].id, rs[best].p))
		rs = append(rs[:best], rs[best+1:]...)
	}
	return strings.Join(s, ",")
}

// inPriorityOrder reports whether m's SRV records come by ascending priority.
func inPriorityOrder(m *dns.Msg) bool {
	last := uint16(0)
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			if srv.Priority < last {
				return false
			}
			last = srv.Priority
		}
	}
	return true
}

// TestLocalitySample samples big SRV sets of two priorities: a sample has
// the records of the lower priority first; the higher ones only with the
// room the lower ones leave, and every lower one when they all fit.
func TestLocalitySample(t *testing.T) {
	const n, local = 3000, 100
	set := make([]srvRR, n)
	inst := make([]instRR, n)
	for i := range n {
		target := fmt.Sprintf("i%05d.web.netsel.", i)
		prio := uint16(srvPriority)
		if i >= local {
			prio = srvPriorityRemote
		}
		srv := &dns.SRV{Hdr: dns.RR_Header{Name: "web.netsel.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
			Priority: prio, Weight: 1, Port: 8000, Target: target}
		set[i] = srvRR{srv: srv, inst: i, wire: packRR(srv, true)}
		inst[i] = instRR{addr: newAddrRR(target, 5, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})).withWire(false)}
	}
	set = compactSRV(set, inst)
	per := len(set[0].wire) + len(set[0].glue)
	for _, tt := range []struct {
		room, locals, remotes int
	}{
		{4000, 4000 / per, 0},                               // fewer than the local ones
		{dns.MaxMsgSize, local, dns.MaxMsgSize/per - local}, // every local one, then the others
	} {
		firsts := map[int]bool{}
		for range 30 {
			pick := pickSRV(set, tt.room, nil)
			if !pick.sampled || len(pick.order) != tt.locals+tt.remotes {
				t.Fatalf("room %d: sampled %v, %d records; want %d", tt.room, pick.sampled, len(pick.order), tt.locals+tt.remotes)
			}
			seen := map[int]bool{}
			for k, i := range pick.order {
				if seen[i] || (k < tt.locals) != (i < local) {
					t.Fatalf("room %d: position %d at %d of the answer (twice, or out of priority order): %v", tt.room, i, k, pick.order)
				}
				seen[i] = true
			}
			if tt.remotes > 0 {
				firsts[pick.order[tt.locals]] = true
			}
		}
		if tt.remotes > 0 && len(firsts) < 2 {
			t.Errorf("room %d: the others always from one window", tt.room)
		}
	}
	// Small sets come whole, lower priority first.
	for range 20 {
		sub := append(append([]srvRR(nil), set[local-3:local]...), set[local:local+3]...)
		pick := pickSRV(sub, dns.MaxMsgSize, nil)
		for k, i := range pick.order {
			if (k < 3) != (i < 3) {
				t.Fatalf("small set: %v not lower priority first", pick.order)
			}
		}
	}
}
