package netsel

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone, over a real index.
func BenchmarkServeDNS(b *testing.B) {
	n := fuzzHandler(b)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web.netsel.", dns.TypeA}, {"web.netsel.", dns.TypeSRV}, {"nosuch.netsel.", dns.TypeA}} {
		b.Run(dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			r := new(dns.Msg)
			r.SetQuestion(q.name, q.qtype)
			w := &test.ResponseWriter{}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				rec := dnstest.NewRecorder(w)
				if _, err := n.ServeDNS(ctx, rec, r); err != nil || rec.Msg == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}
