package netsel

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// TestDNSTable asks every row of DESIGN.md's DNS table over UDP and TCP.
// Port "http" carries HTTP: its SRV name is _http._tcp, HTTP's transport.
func TestDNSTable(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "web", "127.77.0.1",
		catalog.Port{Name: "http", Port: 80, Protocol: "http"},
		catalog.Port{Name: "dns", Port: 53, Protocol: "udp"})
	e.putService(t, "v6", "fd00::77")
	a := inst("web", "a", "127.0.0.10", 8080)
	a.Ports, a.Weight = map[string]int{"http": 8080, "dns": 5300}, 3
	b := inst("web", "b", "2001:db8::1", 9090)
	b.Ports = map[string]int{"http": 9090}
	e.putInstance(t, a, 0)
	rev := e.putInstance(t, b, 0)
	e.waitReady(t)
	e.waitFor(t, 5*time.Second, "web.netsel.", dns.TypeSOA, func(m *dns.Msg) bool {
		return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
	}, "index not at revision")

	glue := []string{"a.web.netsel. 7 IN A 127.0.0.10", "b.web.netsel. 7 IN AAAA 2001:db8::1"}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
		soa    string // zone of the SOA expected in the authority section
	}{
		{"service A is the VIP", "web.netsel.", dns.TypeA, dns.RcodeSuccess,
			[]string{"web.netsel. 7 IN A 127.77.0.1"}, nil, ""},
		{"case is kept", "WeB.NetSel.", dns.TypeA, dns.RcodeSuccess,
			[]string{"WeB.NetSel. 7 IN A 127.77.0.1"}, nil, ""},
		{"service AAAA of a v4 VIP is NODATA", "web.netsel.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, "netsel."},
		{"service AAAA is the v6 VIP", "v6.netsel.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"v6.netsel. 7 IN AAAA fd00::77"}, nil, ""},
		{"service SRV: every instance, main port", "web.netsel.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"web.netsel. 7 IN SRV 10 3 8080 a.web.netsel.", "web.netsel. 7 IN SRV 10 1 9090 b.web.netsel."}, glue, ""},
		{"service SRV without instances is NODATA", "v6.netsel.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, "netsel."},
		{"named port SRV", "_http._tcp.web.netsel.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_http._tcp.web.netsel. 7 IN SRV 10 3 8080 a.web.netsel.", "_http._tcp.web.netsel. 7 IN SRV 10 1 9090 b.web.netsel."}, glue, ""},
		{"named port SRV leaves out instances without it", "_dns._udp.web.netsel.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_dns._udp.web.netsel. 7 IN SRV 10 3 5300 a.web.netsel."}, glue[:1], ""},
		{"default port SRV", "_default._tcp.v6.netsel.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, "netsel."},
		{"named port, wrong protocol", "_http._udp.web.netsel.", dns.TypeSRV, dns.RcodeNameError, nil, nil, "netsel."},
		{"protocol label is the transport, not the port's protocol", "_http._http.web.netsel.", dns.TypeSRV, dns.RcodeNameError, nil, nil, "netsel."},
		{"unknown port", "_ftp._tcp.web.netsel.", dns.TypeSRV, dns.RcodeNameError, nil, nil, "netsel."},
		{"protocol label is an empty non-terminal", "_tcp.web.netsel.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, "netsel."},
		{"named port, other type", "_http._tcp.web.netsel.", dns.TypeA, dns.RcodeSuccess, nil, nil, "netsel."},
		{"instance A", "a.web.netsel.", dns.TypeA, dns.RcodeSuccess,
			[]string{"a.web.netsel. 7 IN A 127.0.0.10"}, nil, ""},
		{"instance AAAA", "B.web.netsel.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"B.web.netsel. 7 IN AAAA 2001:db8::1"}, nil, ""},
		{"instance, other family", "a.web.netsel.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, "netsel."},
		{"unknown instance", "c.web.netsel.", dns.TypeA, dns.RcodeNameError, nil, nil, "netsel."},
		{"PTR of a VIP", "1.0.77.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess,
			[]string{"1.0.77.127.in-addr.arpa. 7 IN PTR web.netsel."}, nil, ""},
		{"PTR of a v6 VIP is outside the reverse zone", "7.7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeServerFailure, nil, nil, ""},
		{"PTR of a free address", "2.0.77.127.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, nil, "77.127.in-addr.arpa."},
		{"reverse name above a VIP is NODATA", "0.77.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, nil, "77.127.in-addr.arpa."},
		{"reverse name above no VIP", "9.77.127.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, nil, "77.127.in-addr.arpa."},
		{"reverse name, other type", "1.0.77.127.in-addr.arpa.", dns.TypeA, dns.RcodeSuccess, nil, nil, "77.127.in-addr.arpa."},
		{"unknown name", "nosuch.netsel.", dns.TypeA, dns.RcodeNameError, nil, nil, "netsel."},
		{"known name, other type", "web.netsel.", dns.TypeTXT, dns.RcodeSuccess, nil, nil, "netsel."},
		{"too many labels", "x.y.a.web.netsel.", dns.TypeA, dns.RcodeNameError, nil, nil, "netsel."},
		{"invalid label", "we_b.netsel.", dns.TypeA, dns.RcodeNameError, nil, nil, "netsel."},
		{"apex SOA", "netsel.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA"}, nil, ""},
		{"apex NS", "netsel.", dns.TypeNS, dns.RcodeSuccess, nil, nil, "netsel."},
		{"ANY is one RRset", "web.netsel.", dns.TypeANY, dns.RcodeSuccess,
			[]string{"web.netsel. 7 IN A 127.77.0.1"}, nil, ""},
		{"outside the zones", "example.org.", dns.TypeA, dns.RcodeServerFailure, nil, nil, ""},
	}
	for _, proto := range []string{"udp", "tcp"} {
		addr := map[string]string{"udp": e.udp, "tcp": e.tcp}[proto]
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				m := query(t, addr, proto, tt.qname, tt.qtype)
				if m.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode], m)
				}
				if tt.rcode != dns.RcodeServerFailure && !m.Authoritative {
					t.Errorf("AA not set\n%v", m)
				}
				if len(tt.answer) == 1 && tt.answer[0] == "SOA" {
					if len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
						t.Errorf("answer %v, want one SOA", m.Answer)
					}
				} else {
					checkRRs(t, "answer", m.Answer, tt.answer)
				}
				checkRRs(t, "additional", withoutOPT(m.Extra), tt.extra)
				switch {
				case tt.soa == "" && len(m.Ns) != 0:
					t.Errorf("authority %v, want none", m.Ns)
				case tt.soa != "":
					if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || m.Ns[0].Header().Name != tt.soa {
						t.Errorf("authority %v, want the SOA of %s", m.Ns, tt.soa)
					} else if soa := m.Ns[0].(*dns.SOA); soa.Minttl != 7 || soa.Hdr.Ttl != 7 {
						t.Errorf("SOA %v: want TTL and minimum 7", soa)
					}
				}
			})
		}
	}
}

// checkRRs compares rrs with want, in any order; want holds RRs in zone
// file syntax.
func checkRRs(t *testing.T, section string, rrs []dns.RR, want []string) {
	t.Helper()
	var got, exp []string
	for _, rr := range rrs {
		got = append(got, rr.String())
	}
	for _, w := range want {
		rr, err := dns.NewRR(w)
		if err != nil {
			t.Fatalf("bad expected RR %q: %v", w, err)
		}
		// Keep the owner's case: NewRR keeps it, String too.
		exp = append(exp, rr.String())
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("%s:\n got %q\nwant %q", section, got, exp)
	}
}

func withoutOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}
