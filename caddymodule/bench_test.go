package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// BenchmarkGetUpstreams measures what the netsel source adds to a proxied
// request: name resolution, the cached view, and the fresh Upstream values
// Caddy needs, then the weighted selection over them.
func BenchmarkGetUpstreams(b *testing.B) {
	e := testenv.StartEtcd(b)
	ctx := context.Background()
	svc, _ := catalog.EncodeService(&catalog.Service{Name: "web", VIP: randomVIP(),
		Ports: []catalog.Port{{Name: "default", Port: 80, Protocol: "tcp"}}})
	e.Client.Put(ctx, ks.ServiceKey("web"), string(svc))
	for i := range 3 {
		in, _ := catalog.EncodeInstance(&catalog.Instance{ID: fmt.Sprintf("i%d", i), Service: "web",
			Address: randomVIP(), Port: 8080, Weight: i + 1})
		e.Client.Put(ctx, ks.InstanceKey("web", fmt.Sprintf("i%d", i)), string(in))
	}
	app := &App{index: syncedIndex(b, e.Client)}
	u := &Upstreams{app: app}
	sel := &WeightedSelection{app: app}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "web.netsel:8081"
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	host := new(reverseproxy.Host) // Caddy reuses one per address
	b.ReportAllocs()
	for b.Loop() {
		ups, err := u.GetUpstreams(r)
		if err != nil || len(ups) != 3 {
			b.Fatalf("got %d upstreams, %v", len(ups), err)
		}
		for _, up := range ups {
			up.Host = host // as Caddy's provisionUpstream does
		}
		if sel.Select(ups, r, nil) == nil {
			b.Fatal("nothing selected")
		}
	}
}
