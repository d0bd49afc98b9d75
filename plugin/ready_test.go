package netsel

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

func TestReady(t *testing.T) {
	n := &Netsel{}
	n.setZones([]string{"netsel."})
	if n.Ready() {
		t.Error("ready before startup")
	}
	// Not ready: SERVFAIL, written by the server, rather than a false NXDOMAIN.
	r := new(dns.Msg)
	r.SetQuestion("web.netsel.", dns.TypeA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if rcode, _ := n.ServeDNS(context.Background(), rec, r); rcode != dns.RcodeServerFailure || rec.Msg != nil {
		t.Errorf("before startup: rcode %d, wrote %v; want SERVFAIL, nothing written", rcode, rec.Msg)
	}

	if n := fuzzHandler(t); !n.Ready() {
		t.Error("not ready with a synced index")
	}
}
