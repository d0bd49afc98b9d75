package netsel

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// FuzzParseName checks that parseName never panics and that every name it
// accepts is rebuilt exactly from its parts.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"web.netsel.", "a.web.netsel.", "_http._tcp.web.netsel.", "_tcp.web.netsel.", "_tag.web.netsel.", "_v2._canary._tag.web.netsel.", "_._tag.web.netsel.",
		"netsel.", "x.y.z.web.netsel.", "..netsel.", "_._.netsel.", "web.", "-a.netsel."} {
		f.Add(s, "netsel.")
	}
	f.Add("web.", ".")
	f.Fuzz(func(t *testing.T, qname, zone string) {
		n := parseName(qname, zone)
		var left string
		switch n.kind {
		case nameInvalid:
			return
		case nameService:
			left = n.service
		case nameInstance:
			left = n.id + "." + n.service
		case nameProto:
			left = "_" + n.proto + "." + n.service
		case namePort:
			left = "_" + n.port + "._" + n.proto + "." + n.service
		case nameTagRoot:
			left = "_tag." + n.service
		case nameTag:
			left = n.tags + "._tag." + n.service
			for _, tag := range splitTags(n.tags) {
				if tag == "" || strings.ContainsAny(tag, ".\\ ") {
					t.Errorf("parseName(%q, %q) = %+v: tag %q is not a tag label", qname, zone, n, tag)
				}
			}
		}
		rebuilt := zone
		switch {
		case left == "":
		case zone == ".":
			rebuilt = left + "."
		default:
			rebuilt = left + "." + zone
		}
		if rebuilt != qname {
			t.Errorf("parseName(%q, %q) = %+v, which rebuilds as %q", qname, zone, n, rebuilt)
		}
		for _, part := range []string{n.service, n.id, n.port} {
			if part != "" && !catalog.ValidName(part) {
				t.Errorf("parseName(%q, %q) = %+v: %q is not a valid name", qname, zone, n, part)
			}
		}
	})
}

// FuzzServeDNS feeds packed messages to the handler, over a real index, and
// checks that it never panics and that whatever it writes packs again.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.netsel.", dns.TypeA}, {"web.netsel.", dns.TypeSRV}, {"_http._tcp.web.netsel.", dns.TypeSRV},
		{"a.web.netsel.", dns.TypeAAAA}, {"1.0.77.127.in-addr.arpa.", dns.TypePTR}, {"netsel.", dns.TypeANY},
		{"nosuch.netsel.", dns.TypeTXT}, {"example.org.", dns.TypeA},
		{"_v2._canary._tag.web.netsel.", dns.TypeSRV}, {"_v2._tag.web.netsel.", dns.TypeAAAA}, {"_tag.web.netsel.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	n := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			return
		}
		// As in CoreDNS's server: the writer is a ScrubWriter, so the wire
		// path (answerWire) is taken where it applies.
		cw := &captureWriter{}
		rcode, _ := n.ServeDNS(context.Background(), request.NewScrubWriter(r, cw), r)
		if cw.reply == nil {
			return // the server writes rcode
		}
		m := new(dns.Msg)
		if err := m.Unpack(cw.reply); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if m.Rcode != rcode {
			t.Errorf("returned %d, wrote %d", rcode, m.Rcode)
		}
		if m.Id != r.Id || !m.Response || len(m.Question) != 1 || m.Question[0] != r.Question[0] {
			t.Errorf("reply does not answer the question:\n%v\nto\n%v", m, r)
		}
	})
}

// captureWriter keeps the reply written to it, in wire form.
type captureWriter struct {
	test.ResponseWriter
	reply []byte
}

func (w *captureWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.reply = b
	return nil
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.reply = append([]byte(nil), b...)
	return len(b), nil
}

// fuzzHandler returns a handler over an index of a small catalog in a real
// etcd.
func fuzzHandler(tb testing.TB) *Netsel {
	etcd := testenv.StartEtcd(tb)
	e := &env{etcd: etcd, ks: catalog.MustKeyspace(catalog.DefaultPrefix)}
	put := func(key string, v []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := etcd.Client.Put(ctx, key, string(v)); err != nil {
			tb.Fatal(err)
		}
	}
	svc := &catalog.Service{Name: "web", VIP: netip.MustParseAddr("127.77.0.1"),
		Ports: []catalog.Port{{Name: "http", Port: 80, Protocol: "tcp"}}}
	b, _ := catalog.EncodeService(svc)
	put(e.ks.ServiceKey("web"), b)
	put(e.ks.VIPKey(svc.VIP), []byte("web"))
	a, bb := inst("web", "a", "127.0.0.10", 8080), inst("web", "b", "::1", 8081)
	a.Tags, bb.Tags = []string{"v2", "canary"}, []string{"V2"}
	for _, in := range []*catalog.Instance{a, bb} {
		b, _ := catalog.EncodeInstance(in)
		put(e.ks.InstanceKey("web", in.ID), b)
	}

	s, err := acquireIndex(indexConfig{Endpoints: []string{etcd.URL}, Prefix: catalog.DefaultPrefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ix.WaitSynced(ctx); err != nil {
		tb.Fatal(err)
	}
	n := &Netsel{ttl: DefaultTTL}
	n.setZones([]string{"netsel.", "77.127.in-addr.arpa."})
	n.Fall.SetZonesFromArgs([]string{strings.ToLower("Example.Org.")})
	n.shared.Store(s)
	return n
}
