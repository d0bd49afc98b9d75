package netsel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestTagNames asks every tag name form of real CoreDNS, over UDP and TCP,
// of a server answering in wire form where it can and of one with
// regularFront (every answer the regular way): the same
// answers from both. Tags mean all of them; a critical or maintenance
// instance is not answered; tags match ignoring case; hostile names (60 tag
// labels, _tag alone, labels that are no tag) get NXDOMAIN or NODATA.
func TestTagNames(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	regular, regularTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, e.etcd.URL), regularFront))

	long := strings.Repeat("x", maxTagLabel) // the longest tag a label holds
	e.putService(t, "web", "127.77.0.1",
		catalog.Port{Name: catalog.DefaultPortName, Port: 80, Protocol: "tcp"},
		catalog.Port{Name: "http", Port: 80, Protocol: "tcp"})
	e.putService(t, "plain", "127.77.0.2")
	tagged := func(id, addr string, port int, tags ...string) *catalog.Instance {
		in := inst("web", id, addr, port)
		in.Tags = tags
		return in
	}
	for _, in := range []*catalog.Instance{
		tagged("a", "127.0.0.10", 8080, "v2", "canary", "a"),
		tagged("b", "127.0.0.11", 8081, "V2", long),
		tagged("c", "2001:db8::1", 9090, "v2", "Canary", "Env_Prod"),
		tagged("d", "127.0.0.12", 8082, "v1"),
		tagged("e", "127.0.0.13", 8083, "v2", "canary"),      // critical
		tagged("f", "127.0.0.14", 8084, "v2", "canary", "m"), // in maintenance
		tagged("g", "127.0.0.10", 8090, "v2"),                // a's host
		tagged("h", "127.0.0.15", 8085, "spaced tag", "a.b"), // not DNS labels
		inst("web", "plain", "127.0.0.16", 8086),
	} {
		e.putInstance(t, in, 0)
	}
	e.putInstance(t, inst("plain", "p", "127.0.0.20", 8000), 0)
	side := func(key string, v any) int64 {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return e.put(t, key, string(b))
	}
	side(e.ks.HealthKey("web", "e"), &catalog.Health{State: catalog.StateCritical})
	rev := side(e.ks.MaintenanceKey("web", "f"), &catalog.Maintenance{Reason: "disk"})
	for _, addr := range []string{e.udp, regular} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			m := query(t, addr, "udp", "web.netsel.", dns.TypeSOA)
			return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
		}, "server %s did not reach revision %d", addr, rev)
	}

	const (
		ok  = dns.RcodeSuccess
		nx  = dns.RcodeNameError
		v2s = "a:8080,b:8081,c:9090,g:8090"
	)
	sixty := strings.Repeat("_a.", 60) + "_tag.web.netsel."
	var mixed strings.Builder // 60 labels of 36 distinct one-byte tags
	for i := range 60 {
		fmt.Fprintf(&mixed, "_%c.", "abcdefghijklmnopqrstuvwxyz0123456789"[i%36])
	}
	tests := []struct {
		qname string
		qtype uint16
		rcode int
		want  string // SRV targets:ports, or addresses, sorted
		glue  int    // additional records
	}{
		{"_v2._tag.web.netsel.", dns.TypeSRV, ok, v2s, 4},
		{"_V2._TAG.Web.NetSel.", dns.TypeSRV, ok, v2s, 4},
		{"_v2._tag.web.netsel.", dns.TypeANY, ok, v2s, 4},
		{"_v2._tag.web.netsel.", dns.TypeA, ok, "127.0.0.10,127.0.0.11", 0}, // a and g share one record
		{"_v2._tag.web.netsel.", dns.TypeAAAA, ok, "2001:db8::1", 0},
		{"_v2._canary._tag.web.netsel.", dns.TypeSRV, ok, "a:8080,c:9090", 2},
		{"_canary._v2._tag.web.netsel.", dns.TypeSRV, ok, "a:8080,c:9090", 2},
		{"_v2._v2._canary._v2._tag.web.netsel.", dns.TypeSRV, ok, "a:8080,c:9090", 2},
		{"_env_prod._canary._tag.web.netsel.", dns.TypeSRV, ok, "c:9090", 1},
		{"_" + long + "._tag.web.netsel.", dns.TypeSRV, ok, "b:8081", 1},
		{"_v2._tag.web.netsel.", dns.TypeTXT, ok, "", 0},
		{"_v1._tag.web.netsel.", dns.TypeAAAA, ok, "", 0},
		{"_v1._canary._tag.web.netsel.", dns.TypeSRV, nx, "", 0},
		{"_nosuch._tag.web.netsel.", dns.TypeA, nx, "", 0},
		{"_m._tag.web.netsel.", dns.TypeSRV, nx, "", 0}, // only on an instance in maintenance
		{"_tag.web.netsel.", dns.TypeSRV, ok, "", 0},    // empty non-terminal
		{"_tag.web.netsel.", dns.TypeA, ok, "", 0},
		{"_tag.plain.netsel.", dns.TypeSRV, nx, "", 0}, // no tags below
		{"_tag.nosuch.netsel.", dns.TypeSRV, nx, "", 0},
		{"_v2._tag.nosuch.netsel.", dns.TypeSRV, nx, "", 0},
		{sixty, dns.TypeSRV, ok, "a:8080", 1},
		{mixed.String() + "_tag.web.netsel.", dns.TypeSRV, nx, "", 0},
		{"_._tag.web.netsel.", dns.TypeSRV, nx, "", 0},
		{`_spaced\032tag._tag.web.netsel.`, dns.TypeSRV, nx, "", 0},
		{`_a\.b._tag.web.netsel.`, dns.TypeSRV, nx, "", 0},
		{"a._tag.web.netsel.", dns.TypeSRV, nx, "", 0},        // an id is no tag label
		{"_v2.a._tag.web.netsel.", dns.TypeSRV, nx, "", 0},    // nor among them
		{"_v2._tag._tag.web.netsel.", dns.TypeSRV, nx, "", 0}, // tag "tag": no instance has it
		{"_http._tcp.web.netsel.", dns.TypeSRV, ok, "a:8080,b:8081,c:9090,d:8082,g:8090,h:8085,plain:8086", 7},
		{"_tcp.web.netsel.", dns.TypeSRV, ok, "", 0},
	}
	for _, tt := range tests {
		for _, srv := range []struct{ name, udp, tcp string }{{"wire", e.udp, e.tcp}, {"regular", regular, regularTCP}} {
			for _, proto := range []string{"udp", "tcp"} {
				addr := srv.udp
				if proto == "tcp" {
					addr = srv.tcp
				}
				m := query(t, addr, proto, tt.qname, tt.qtype)
				what := fmt.Sprintf("%s %s (%s, %s)", tt.qname, dns.TypeToString[tt.qtype], srv.name, proto)
				if m.Rcode != tt.rcode {
					t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
					continue
				}
				if got := answerText(m); got != tt.want {
					t.Errorf("%s: answer %q, want %q", what, got, tt.want)
				}
				if len(m.Extra) != tt.glue {
					t.Errorf("%s: %d additional records, want %d", what, len(m.Extra), tt.glue)
				}
				if tt.want == "" && (len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
					t.Errorf("%s: no SOA in a negative answer: %v", what, m.Ns)
				}
				if !m.Authoritative || m.Truncated {
					t.Errorf("%s: AA %v, TC %v", what, m.Authoritative, m.Truncated)
				}
			}
		}
	}
}

// answerText is the answer section of m as sorted "target:port" (SRV,
// target without .web.netsel.) or addresses.
func answerText(m *dns.Msg) string {
	var s []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.SRV:
			s = append(s, fmt.Sprintf("%s:%d", strings.TrimSuffix(rr.Target, ".web.netsel."), rr.Port))
		case *dns.A:
			s = append(s, rr.A.String())
		case *dns.AAAA:
			s = append(s, rr.AAAA.String())
		default:
			s = append(s, rr.String())
		}
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// TestTagNamesBig asks tag names of a service of 3000 instances, each with
// 37 tags: a UDP answer is a sample that fits 512 bytes, with TC; an AND of 36 tags that every instance
// carries answers like one tag; the addresses of a tag are sampled alike.
func TestTagNamesBig(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "big", "127.77.0.3")
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	var rev int64
	for start := 0; start < 3000; start += 100 {
		var ops []clientv3.Op
		for i := start; i < start+100; i++ {
			in := inst("big", fmt.Sprintf("i%05d", i), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), 8000)
			in.Tags = append(strings.Split(chars, ""), []string{"even", "odd"}[i%2])
			b, err := catalog.EncodeInstance(in)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(e.ks.InstanceKey("big", in.ID), string(b)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := e.etcd.Client.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		m := query(t, e.udp, "udp", "big.netsel.", dns.TypeSOA)
		return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
	}, "the server did not reach revision %d", rev)

	every := ""
	for _, c := range chars {
		every += "_" + string(c) + "."
	}
	for _, qname := range []string{"_a._tag.big.netsel.", every + "_tag.big.netsel.", "_even._a._tag.big.netsel."} {
		for _, qtype := range []uint16{dns.TypeSRV, dns.TypeA} {
			for _, proto := range []string{"udp", "tcp"} {
				addr := e.udp
				if proto == "tcp" {
					addr = e.tcp
				}
				m := new(dns.Msg)
				m.SetQuestion(qname, qtype)
				c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
				r, _, err := c.Exchange(m, addr)
				if err != nil {
					t.Fatalf("%s %s over %s: %v", qname, dns.TypeToString[qtype], proto, err)
				}
				what := fmt.Sprintf("%.40s %s over %s", qname, dns.TypeToString[qtype], proto)
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					t.Fatalf("%s: %s with %d answers", what, dns.RcodeToString[r.Rcode], len(r.Answer))
				}
				if proto == "udp" && !r.Truncated {
					t.Errorf("%s: a sample without TC", what)
				}
				r.Compress = true
				if size := r.Len(); proto == "udp" && size > 512 {
					t.Errorf("%s: %d bytes over UDP without EDNS0", what, size)
				}
				for _, rr := range r.Answer {
					if srv, ok := rr.(*dns.SRV); ok && strings.Contains(qname, "_even.") {
						var i int
						if _, err := fmt.Sscanf(srv.Target, "i%05d.", &i); err != nil || i%2 != 0 {
							t.Errorf("%s: %s has not the tag even", what, srv.Target)
						}
					}
				}
			}
		}
	}
}
