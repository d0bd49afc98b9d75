package registrar_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestCheckSpecs registers bad check specs through the HTTP API: each is
// a 400 naming the field at fault, and writes nothing.
func TestCheckSpecs(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	url := reg.URL + "/v1/services/web/instances"
	body := func(checks string) string {
		return `{"id":"a","address":"127.0.0.1","port":8080,"ports":{"http":8080,"admin":9000},"checks":` + checks + `}`
	}
	nine := `[` + `{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"},{"type":"tcp"}` + `]`
	for _, tc := range []struct{ name, checks, field string }{
		{"no type", `[{}]`, "checks[0].type"},
		{"unknown type", `[{"type":"tcp"},{"type":"icmp"}]`, "checks[1].type"},
		{"too many", nine, "checks"},
		{"interval under 1s", `[{"type":"tcp","interval":"500ms"}]`, "checks[0].interval"},
		{"interval over 1h", `[{"type":"tcp","interval":"2h"}]`, "checks[0].interval"},
		{"interval negative", `[{"type":"tcp","interval":-3}]`, "checks[0].interval"},
		// JSON-level errors name the field as the decoder sees it.
		{"interval not a duration", `[{"type":"tcp","interval":"often"}]`, "checks.interval"},
		{"timeout over the interval", `[{"type":"tcp","interval":"1s","timeout":"2s"}]`, "checks[0].timeout"},
		{"timeout too short", `[{"type":"tcp","timeout":"10ms"}]`, "checks[0].timeout"},
		{"failures over 100", `[{"type":"tcp","failures":101}]`, "checks[0].failures"},
		{"failures negative", `[{"type":"tcp","failures":-1}]`, "checks[0].failures"},
		{"successes over 100", `[{"type":"http","successes":1000}]`, "checks[0].successes"},
		{"path without slash", `[{"type":"http","path":"healthz"}]`, "checks[0].path"},
		{"path with a space", `[{"type":"http","path":"/a b"}]`, "checks[0].path"},
		{"path on tcp", `[{"type":"tcp","path":"/"}]`, "checks[0].path"},
		{"service on http", `[{"type":"http","service":"x"}]`, "checks[0].service"},
		{"port no name", `[{"type":"tcp","port":"Admin!"}]`, "checks[0].port"},
		{"port of no instance port", `[{"type":"tcp"},{"type":"http","port":"metrics"}]`, "checks[1].port"},
		{"unknown check field", `[{"type":"tcp","every":"1s"}]`, "every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", url, body(tc.checks))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if e := r.apiError(t); e.Field != tc.field || e.Error == "" {
				t.Errorf("error %+v, want field %q", e, tc.field)
			}
		})
	}
	if k := keys(t, etcd.Client); len(instanceKeys(k)) != 0 {
		t.Errorf("bad checks wrote keys: %v", k)
	}

	// A good spec is stored with every default filled in.
	register(t, reg.URL, "web", mustReq(body(`[{"type":"http","port":"admin"},{"type":"tcp","interval":"1s"},{"type":"grpc","service":"x","failures":5,"successes":2}]`)))
	want := []api.Check{
		{Type: "http", Path: "/", Port: "admin", Interval: api.Duration(10 * time.Second), Timeout: api.Duration(2 * time.Second), Failures: 3, Successes: 1},
		{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(time.Second), Failures: 3, Successes: 1},
		{Type: "grpc", Service: "x", Interval: api.Duration(10 * time.Second), Timeout: api.Duration(2 * time.Second), Failures: 5, Successes: 2},
	}
	var got api.ServiceView
	testenv.Eventually(t, 5*time.Second, func() bool {
		r := do(t, "GET", reg.URL+"/v1/services/web", nil)
		if r.status != http.StatusOK {
			return false
		}
		r.decode(t, &got)
		return len(got.Instances) == 1
	}, "the instance never showed")
	if g := got.Instances[0].Checks; len(g) != len(want) {
		t.Fatalf("checks %+v, want %+v", g, want)
	}
	for i := range want {
		if got.Instances[0].Checks[i] != want[i] {
			t.Errorf("checks[%d] = %+v, want %+v", i, got.Instances[0].Checks[i], want[i])
		}
	}
}

// instanceKeys returns the keys of instances, services and their health
// among keys: what a registration writes.
func instanceKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if key, ok := ks.ParseKey(k); ok && key.Kind != catalog.KindMember {
			out = append(out, k)
		}
	}
	return out
}
