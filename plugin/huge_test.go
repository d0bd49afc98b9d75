package netsel

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestHugeServiceSRV asks for the SRV set of a service of 5,000 instances,
// more than fit even a TCP reply: every reply is a sample that fits the
// client's buffer, with each record's glue, TC set over UDP (and not over
// TCP, where asking again would bring no more), and the sample changes from
// query to query.
func TestHugeServiceSRV(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "huge", "127.77.0.3")
	rev := putMany(t, e.etcd.Client, e.ks, "huge", "h", 5000)
	e.waitReady(t)
	e.waitFor(t, 10*time.Second, "huge.netsel.", dns.TypeSOA, func(m *dns.Msg) bool {
		return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
	}, "index not at revision")

	for _, tt := range []struct {
		name  string
		proto string
		edns  uint16
		limit int
		least int // answers at least
	}{
		{"UDP", "udp", 0, dns.MinMsgSize, 5},
		{"UDP with EDNS0", "udp", 1232, 1232, 15},
		{"UDP with a big EDNS0 buffer", "udp", 4096, 4096, 50},
		{"TCP", "tcp", 0, dns.MaxMsgSize, 800},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := e.udp
			if tt.proto == "tcp" {
				addr = e.tcp
			}
			seen := map[string]int{}
			const queries = 20
			for range queries {
				req := new(dns.Msg)
				req.SetQuestion("huge.netsel.", dns.TypeSRV)
				if tt.edns != 0 {
					req.SetEdns0(tt.edns, false)
				}
				m := exchange(t, addr, tt.proto, req)
				if m.Truncated != (tt.proto == "udp") {
					t.Fatalf("%s: TC %v on %d of 5000 records", tt.proto, m.Truncated, len(m.Answer))
				}
				if l := wireLen(m); l > tt.limit {
					t.Fatalf("reply of %d bytes, over %d", l, tt.limit)
				}
				if len(m.Answer) < tt.least {
					t.Fatalf("%d answers, want at least %d", len(m.Answer), tt.least)
				}
				glue := map[string]bool{}
				for _, rr := range withoutOPT(m.Extra) {
					glue[rr.Header().Name] = true
				}
				targets := map[string]bool{}
				for _, rr := range m.Answer {
					target := rr.(*dns.SRV).Target
					if targets[target] {
						t.Fatalf("%s twice in one answer", target)
					}
					targets[target] = true
					if !glue[target] {
						t.Fatalf("no glue for %s: %d answers, %d additional", target, len(m.Answer), len(m.Extra))
					}
					seen[target]++
				}
			}
			// 20 samples of k records out of 5000: mostly different
			// records, or most of the set.
			total := 0
			for _, c := range seen {
				total += c
			}
			if len(seen) < min(total*3/4, 3500) { // a fixed answer would give k
				t.Errorf("%d queries returned %d records but only %d different ones: not spread over the set", queries, total, len(seen))
			}
		})
	}
}

// TestPickSRV checks the choice of records from a set too big for any reply:
// as many as fit, each once, with a different start each time; and a set
// that might fit comes whole.
func TestPickSRV(t *testing.T) {
	const n = 30000
	set := make([]srvRR, n)
	inst := make([]instRR, n)
	for i := range n {
		target := fmt.Sprintf("i%05d.web.netsel.", i)
		srv := &dns.SRV{Hdr: dns.RR_Header{Name: "web.netsel.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
			Priority: srvPriority, Weight: 1, Port: 8000, Target: target}
		set[i] = srvRR{srv: srv, inst: i, wire: packRR(srv, true)}
		inst[i] = instRR{addr: newAddrRR(target, 5, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})).withWire(false)}
	}
	set = compactSRV(set, inst)
	per := len(set[0].wire) + len(set[0].glue)
	const room = 4000
	firsts := map[int]bool{}
	for range 50 {
		pick := pickSRV(set, room, nil)
		if !pick.sampled || len(pick.order) != room/per {
			t.Fatalf("sampled %v, %d records, want a sample of %d", pick.sampled, len(pick.order), room/per)
		}
		seen := map[int]bool{}
		for _, i := range pick.order {
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("position %d out of range or twice in %v", i, pick.order)
			}
			seen[i] = true
		}
		firsts[pick.order[0]] = true
	}
	if len(firsts) < 40 {
		t.Errorf("50 samples began at only %d positions", len(firsts))
	}
	if pick := pickSRV(set[:100], dns.MaxMsgSize, nil); pick.sampled || len(pick.order) != 100 {
		t.Errorf("100 records for 64 KiB: sampled %v, %d records; want all", pick.sampled, len(pick.order))
	}
}
