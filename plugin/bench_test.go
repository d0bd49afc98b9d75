package netsel

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone, over a real index.
func BenchmarkServeDNS(b *testing.B) {
	n := fuzzHandler(b)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web.netsel.", dns.TypeA}, {"web.netsel.", dns.TypeSRV}, {"nosuch.netsel.", dns.TypeA},
		{"_v2._canary._tag.web.netsel.", dns.TypeSRV}, {"_v2._tag.web.netsel.", dns.TypeA}} {
		r := new(dns.Msg)
		r.SetQuestion(q.name, q.qtype)
		ctx := context.Background()
		// regular: a plugin before netsel wraps the writer, so the reply
		// is a dns.Msg (packing it is the server's cost, not counted here).
		b.Run("regular/"+dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			w := &test.ResponseWriter{}
			b.ReportAllocs()
			for b.Loop() {
				rec := dnstest.NewRecorder(w)
				if _, err := n.ServeDNS(ctx, rec, r); err != nil || rec.Msg == nil {
					b.Fatal("no reply")
				}
			}
		})
		// server: as CoreDNS calls the plugin, through its ScrubWriter,
		// with the reply sized and packed or written in wire form.
		b.Run("server/"+dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			cw := &captureWriter{}
			b.ReportAllocs()
			for b.Loop() {
				cw.reply = nil
				if _, err := n.ServeDNS(ctx, request.NewScrubWriter(r, cw), r); err != nil || cw.reply == nil {
					b.Fatal("no reply")
				}
			}
		})
		// prometheus: as CoreDNS calls the plugin with the prometheus
		// plugin in front: its recorder, in the writer NextOrFailure adds.
		b.Run("prometheus/"+dns.TypeToString[q.qtype]+"/"+q.name, func(b *testing.B) {
			cw := &captureWriter{}
			b.ReportAllocs()
			for b.Loop() {
				cw.reply = nil
				rec := metrics.NewRecorder(request.NewScrubWriter(r, cw))
				if _, err := plugin.NextOrFailure("prometheus", n, ctx, rec, r); err != nil || cw.reply == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}
