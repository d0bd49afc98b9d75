package netsel

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// BenchmarkSRVSize compares one SRV query (UDP, no EDNS0) of a service of 3
// instances with one of 30,000, on the regular path and as CoreDNS calls
// the plugin (wire form where it applies): the cost must not follow the
// size of the service.
func BenchmarkSRVSize(b *testing.B) {
	etcd := testenv.StartEtcd(b)
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	sizes := []int{3, 30000}
	var rev int64
	for _, size := range sizes {
		svc := fmt.Sprintf("s%d", size)
		v, _ := catalog.EncodeService(&catalog.Service{Name: svc, VIP: netip.AddrFrom4([4]byte{127, 77, 1, byte(size % 250)}),
			Ports: []catalog.Port{{Name: "http", Port: 80, Protocol: "tcp"}}})
		if _, err := etcd.Client.Put(context.Background(), ks.ServiceKey(svc), string(v)); err != nil {
			b.Fatal(err)
		}
	}
	for _, size := range sizes {
		rev = putMany(b, etcd.Client, ks, fmt.Sprintf("s%d", size), "i", size)
	}
	s, err := acquireIndex(indexConfig{Endpoints: []string{etcd.URL}, Prefix: catalog.DefaultPrefix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.ix.WaitSynced(ctx); err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, 30*time.Second, func() bool { return s.ix.Snapshot().Revision() >= rev }, "index not at revision %d", rev)
	n := &Netsel{ttl: DefaultTTL}
	n.setZones([]string{"netsel."})
	n.shared.Store(s)

	for _, size := range sizes {
		r := new(dns.Msg)
		r.SetQuestion(fmt.Sprintf("s%d.netsel.", size), dns.TypeSRV)
		// Build the service's records (once per change) before timing.
		n.ServeDNS(ctx, dnstest.NewRecorder(&test.ResponseWriter{}), r)
		b.Run(fmt.Sprintf("regular/%d", size), func(b *testing.B) {
			w := &test.ResponseWriter{}
			b.ReportAllocs()
			cpu := testenv.CPUTime()
			for b.Loop() {
				rec := dnstest.NewRecorder(w)
				if _, err := n.ServeDNS(ctx, rec, r); err != nil || rec.Msg == nil {
					b.Fatal("no reply")
				}
			}
			testenv.ReportCPU(b, cpu)
		})
		b.Run(fmt.Sprintf("server/%d", size), func(b *testing.B) {
			cw := &sinkWriter{}
			b.ReportAllocs()
			cpu := testenv.CPUTime()
			for b.Loop() {
				cw.n = 0
				if _, err := n.ServeDNS(ctx, request.NewScrubWriter(r, cw), r); err != nil || cw.n == 0 {
					b.Fatal("no reply")
				}
			}
			testenv.ReportCPU(b, cpu)
		})
	}
}

// sinkWriter counts the bytes of the reply, as a socket takes them: a reply
// written as a dns.Msg is packed into a reused buffer.
type sinkWriter struct {
	test.ResponseWriter
	buf []byte
	n   int
}

func (w *sinkWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	if err != nil {
		return err
	}
	w.buf, w.n = b[:cap(b)], len(b)
	return nil
}

func (w *sinkWriter) Write(b []byte) (int, error) {
	w.n = len(b)
	return len(b), nil
}

// putMany writes n instances of svc, with IDs of one length ("<prefix>%05d")
// and IPv4 addresses, in transactions of 100, and returns the revision of
// the last write.
func putMany(tb testing.TB, cli *clientv3.Client, ks catalog.Keyspace, svc, prefix string, n int) int64 {
	tb.Helper()
	var rev int64
	for start := 0; start < n; start += 100 {
		var ops []clientv3.Op
		for i := start; i < min(start+100, n); i++ {
			in := inst(svc, fmt.Sprintf("%s%05d", prefix, i), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), 8000)
			b, err := catalog.EncodeInstance(in)
			if err != nil {
				tb.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(ks.InstanceKey(svc, in.ID), string(b)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	return rev
}
