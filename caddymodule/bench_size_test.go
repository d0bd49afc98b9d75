package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// BenchmarkUpstreamsSize compares what the netsel source and policy add to
// a proxied request for a service of 3 instances and one of 30,000:
// GetUpstreams, a Host per upstream as Caddy's provisionUpstream gives
// (here one shared, without Caddy's global lock), and netsel_weighted.
func BenchmarkUpstreamsSize(b *testing.B) {
	app := appWith(b, map[string]int{"s3": 3, "s30000": 30000}, func(i int) int { return 1 + i%3 })
	u := &Upstreams{app: app}
	sel := &WeightedSelection{app: app}
	host := new(reverseproxy.Host)
	for _, name := range []string{"s3", "s30000"} {
		app.view(name) // build the view (once per change) before timing
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := testenv.CPUTime()
			for b.Loop() {
				r := requestFor(name)
				ups, err := u.GetUpstreams(r)
				if err != nil || len(ups) == 0 {
					b.Fatalf("got %d upstreams, %v", len(ups), err)
				}
				for _, up := range ups {
					up.Host = host
				}
				if sel.Select(ups, r, nil) == nil {
					b.Fatal("nothing selected")
				}
			}
			testenv.ReportCPU(b, cpu)
		})
	}
}

// appWith returns an app over a fresh etcd holding, for each name in sizes,
// a service of that many instances ("i%05d", at 10.x.y.z:8080) weighing
// weight(i).
func appWith(tb testing.TB, sizes map[string]int, weight func(i int) int) *App {
	tb.Helper()
	e := testenv.StartEtcd(tb)
	ctx := context.Background()
	for name, size := range sizes {
		svc, _ := catalog.EncodeService(&catalog.Service{Name: name, VIP: randomVIP(),
			Ports: []catalog.Port{{Name: "default", Port: 80, Protocol: "tcp"}}})
		if _, err := e.Client.Put(ctx, ks.ServiceKey(name), string(svc)); err != nil {
			tb.Fatal(err)
		}
		for start := 0; start < size; start += 100 {
			var ops []clientv3.Op
			for i := start; i < min(start+100, size); i++ {
				id := fmt.Sprintf("i%05d", i)
				in, _ := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: name,
					Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Port: 8080, Weight: weight(i)})
				ops = append(ops, clientv3.OpPut(ks.InstanceKey(name, id), string(in)))
			}
			if _, err := e.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return &App{index: syncedIndex(tb, e.Client)}
}

// requestFor returns a request for service name, with a replacer as Caddy
// gives it.
func requestFor(name string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = name + ".netsel"
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}
