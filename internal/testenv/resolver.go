package testenv

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// UpstreamAnswer is the address StartUpstream answers every A question
// with: a documentation address, an answer only, never dialled.
const UpstreamAnswer = "192.0.2.1"

// StartUpstream serves DNS on pc, a resolver that answers every A question
// with UpstreamAnswer, until the test ends, and returns the count of
// questions it was asked: a stand-in for a host's upstream resolver.
func StartUpstream(t testing.TB, pc net.PacketConn) *atomic.Int64 {
	t.Helper()
	asked := new(atomic.Int64)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(UpstreamAnswer),
			})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return asked
}
