package registrar_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestConsulTagFilter: the Consul reads' ?tag= matches as NetSel's own
// ?tag= and DNS do (and as Consul does), ignoring case, and is bounded as
// they are: more tags than an instance can carry is a 400 naming tag, not
// a scan of every instance against every tag of a 64 KiB query.
func TestConsulTagFilter(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 8080, Tags: []string{"Canary", "v2"}})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 8081, Tags: []string{"v2"}})
	c := consulClient(t, reg, "")

	cs, _, err := c.Catalog().ServiceMultipleTags("web", []string{"canary", "V2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := catalogIDs(cs); !slices.Equal(got, []string{"a"}) {
		t.Errorf("catalog ?tag=canary&tag=V2: %v, want [a]", got)
	}
	es, _, err := c.Health().ServiceMultipleTags("web", []string{"CANARY"}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(es); !slices.Equal(got, []string{"a"}) {
		t.Errorf("health ?tag=CANARY&passing: %v, want [a]", got)
	}

	many := strings.Repeat("tag=v2&", 65)
	for _, path := range []string{"/v1/catalog/service/web?", "/v1/health/service/web?", "/v1/health/service/web?index=1&"} {
		for _, q := range []string{many + "x=1", "tag=", "tag=" + strings.Repeat("x", 256)} {
			r := do(t, "GET", reg.URL+path+q, nil)
			if r.status != http.StatusBadRequest || r.apiError(t).Field != "tag" {
				t.Errorf("%s%.40s: %d %.200s, want 400 naming tag", path, q, r.status, r.body)
			}
		}
	}
}
