package netsel

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestOddQueries sends malformed or unusual queries and checks that each gets
// a sensible RCODE and that the server keeps answering.
func TestOddQueries(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "web", "127.77.0.1")
	e.waitReady(t)
	e.waitFor(t, time.Second, "web.netsel.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 }, "service not served")

	// A 255-octet name (254 characters in text form) inside the zone.
	long := strings.Repeat(strings.Repeat("a", 62)+".", 3) + strings.Repeat("b", 57) + ".netsel."
	if len(long) != 254 {
		t.Fatalf("long name is %d characters", len(long))
	}

	msg := func(f func(m *dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("web.netsel.", dns.TypeA)
		f(m)
		return m
	}
	tests := []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"class CHAOS", msg(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dns.RcodeRefused},
		{"class ANY", msg(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }), dns.RcodeRefused},
		{"no question", msg(func(m *dns.Msg) { m.Question = nil }), dns.RcodeFormatError},
		{"two questions", msg(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dns.RcodeFormatError},
		{"qtype ANY", msg(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeANY }), dns.RcodeSuccess},
		{"qtype 0", msg(func(m *dns.Msg) { m.Question[0].Qtype = 0 }), dns.RcodeSuccess},
		{"AXFR", msg(func(m *dns.Msg) { m.Question[0].Name, m.Question[0].Qtype = "netsel.", dns.TypeAXFR }), dns.RcodeRefused},
		{"255-octet name", msg(func(m *dns.Msg) { m.Question[0].Name = long }), dns.RcodeNameError},
		{"opcode UPDATE", msg(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"EDNS version 1", msg(func(m *dns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) }), dns.RcodeBadVers},
		{"tiny EDNS buffer", msg(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeSRV; m.SetEdns0(1, false) }), dns.RcodeSuccess},
	}
	for _, proto := range []string{"udp", "tcp"} {
		addr := map[string]string{"udp": e.udp, "tcp": e.tcp}[proto]
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				tt.req.Id = dns.Id()
				m := exchange(t, addr, proto, tt.req)
				if m.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode], m)
				}
			})
		}
	}
	if m := query(t, e.udp, "udp", "web.netsel.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("server no longer answers:\n%v", m)
	}
}
