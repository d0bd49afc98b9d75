package registrar_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// TestConsulBlockingSlots: a Consul blocking query holds a blocking-query
// slot as NetSel's own do; past MaxBlockingQueries it is a 429 naming index,
// while a read without an index (even with a wait, as consul-template's
// first query) answers at once.
func TestConsulBlockingSlots(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxBlockingQueries: 1}))
	register(t, reg.URL, "web", regBody("a"))
	idx := do(t, "GET", reg.URL+"/v1/health/service/web", nil).header.Get("X-Consul-Index")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := blockingQuery(ctx, t, reg.URL, "/v1/health/service/web?wait=1m&index="+idx, "")
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", 1)
	wantRefused(t, do(t, "GET", reg.URL+"/v1/catalog/service/web?wait=1m&index="+idx, nil), http.StatusTooManyRequests, "index")
	wantRefused(t, do(t, "GET", reg.URL+"/v1/catalog/services?wait=1m&index="+idx, nil), http.StatusTooManyRequests, "index")
	c := consulClient(t, reg, "")
	start := time.Now()
	if _, _, err := c.Health().Service("web", "", true, &consul.QueryOptions{WaitTime: time.Minute, AllowStale: true}); err != nil {
		t.Fatalf("a wait without an index: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a wait without an index took %v, want an answer at once", took)
	}
	register(t, reg.URL, "web", regBody("b"))
	select {
	case s := <-waiting:
		if s != http.StatusOK {
			t.Errorf("the waiting query answered %d", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting query did not wake for a registration")
	}
}

// TestConsulBeforeSync: until the registrar has read etcd, the Consul reads
// answer 503 with Retry-After, not an empty catalog (which Prometheus would
// take for every target gone); once etcd is reachable they answer.
func TestConsulBeforeSync(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	proxy.Cut()
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) { c.Checks.Disabled = true })
	for _, path := range []string{
		"/v1/catalog/services", "/v1/catalog/service/web", "/v1/health/service/web", "/v1/catalog/nodes",
		"/v1/health/service/web?stale", "/v1/health/service/web?index=1&wait=1s", "/v1/catalog/services?index=1&wait=1s",
	} {
		r := do(t, "GET", reg.URL+path, nil)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s before the index read etcd: %d %s; want 503 with Retry-After", path, r.status, r.body)
		}
	}
	proxy.Restore()
	testenv.Eventually(t, 20*time.Second, func() bool {
		return do(t, "GET", reg.URL+"/v1/catalog/services", nil).status == http.StatusOK
	}, "the services list never answered once etcd was reachable")
}

// TestConsulAuth: with AuthReads, the Consul endpoints need a token, which
// Consul clients send as X-Consul-Token (Prometheus beside an empty basic
// Authorization); a bearer token works too.
func TestConsulAuth(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, scopedTokens)
		c.AuthReads = true
	})
	_, _, err := consulClient(t, reg, "").Catalog().Services(nil)
	var se consul.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("without a token: %v, want 401", err)
	}
	if _, _, err := consulClient(t, reg, "nope-nope-nope-nope").Catalog().Services(nil); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Errorf("unknown token: %v, want 401", err)
	}
	if _, _, err := consulClient(t, reg, "dash-token-0123456789").Catalog().Services(nil); err != nil {
		t.Errorf("read token: %v", err)
	}
	prom, err := consul.NewClient(&consul.Config{Address: reg.Addr, Token: "dash-token-0123456789", HttpAuth: &consul.HttpBasicAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := prom.Health().Service("web", "", false, nil); err != nil {
		t.Errorf("token beside an empty basic Authorization, as Prometheus sends: %v", err)
	}
	if r := do(t, "GET", reg.URL+"/v1/catalog/services", nil, bearer("dash-token-0123456789")...); r.status != 200 {
		t.Errorf("bearer token: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", reg.URL+"/v1/catalog/services?token=dash-token-0123456789", nil); r.status != 200 {
		t.Errorf("?token=, as older Consul clients send it: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", reg.URL+"/v1/kv/x?token=nope", nil); r.status != 404 {
		t.Errorf("an unserved path answers 404 whatever the token: %d %s", r.status, r.body)
	}
}

// TestConsulNotServed: what NetSel does not serve of Consul's API is a JSON
// 404 saying so, a write to a served path a 405; NetSel's own paths beside
// them are unchanged.
func TestConsulNotServed(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/kv/config/app", 404},
		{"PUT", "/v1/kv/config/app", 404},
		{"GET", "/v1/agent/services", 404},
		{"PUT", "/v1/agent/service/register", 404},
		{"PUT", "/v1/catalog/register", 404},
		{"GET", "/v1/health/checks/web", 404},
		{"GET", "/v1/health/state/critical", 404},
		{"GET", "/v1/health/connect/web", 404},
		{"GET", "/v1/catalog/service/web/extra", 404},
		{"GET", "/v1/status", 404},
		{"POST", "/v1/txn", 404},
		// Consul's snapshot save and restore: NetSel's own is /v1/backup,
		// whose JSON a Consul client would take for a broken archive.
		{"GET", "/v1/snapshot", 404},
		{"PUT", "/v1/snapshot", 404},
		{"PUT", "/v1/catalog/services", 405},
		{"DELETE", "/v1/health/service/web", 405},
		{"POST", "/v1/status/leader", 405},
	} {
		r := do(t, tc.method, reg.URL+tc.path, nil)
		e := r.apiError(t)
		if r.status != tc.status || !strings.Contains(e.Error, "Consul") || !strings.Contains(e.Error, "/v1/catalog/services") {
			t.Errorf("%s %s: %d %s; want %d naming the Consul subset served", tc.method, tc.path, r.status, r.body, tc.status)
		}
		if tc.status == 405 && r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, r.header.Get("Allow"))
		}
	}
	if r := do(t, "GET", reg.URL+"/v1/health", nil); r.status != 200 || !strings.Contains(string(r.body), `"etcd"`) {
		t.Errorf("NetSel's /v1/health: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", reg.URL+"/v1/health", nil); r.status != 405 {
		t.Errorf("POST /v1/health: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", reg.URL+"/v1/services", nil); r.status != 200 {
		t.Errorf("NetSel's /v1/services: %d %s", r.status, r.body)
	}
}

// TestConsulHostile: bad query options are 400s naming the field, not a
// silent answer to another question.
func TestConsulHostile(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	for _, tc := range []struct{ query, field string }{
		{"/v1/health/service/web?index=-1", "index"},
		{"/v1/health/service/web?index=abc", "index"},
		{"/v1/catalog/services?index=99999999999999999999999", "index"},
		{"/v1/catalog/service/web?index=5&wait=forever", "wait"},
		{"/v1/catalog/service/web?index=5&wait=99999999999999999h", "wait"},
		{"/v1/catalog/service/web?index=5&wait=-5s", "wait"},
		{"/v1/catalog/service/web?wait=soon", "wait"},
		{"/v1/health/service/web?passing=maybe", "passing"},
		{"/v1/health/service/web?dc=eu-west", "dc"},
		{"/v1/catalog/services?filter=ServiceName%3D%3Dweb", "filter"},
		{"/v1/catalog/services?node-meta=rack:1", "node-meta"},
		{"/v1/health/service/web?ns=team-a", "ns"},
		{"/v1/health/service/Web%21", "name"},
	} {
		r := do(t, "GET", reg.URL+tc.query, nil)
		if e := r.apiError(t); r.status != 400 || e.Field != tc.field {
			t.Errorf("%s: %d %s; want 400 naming %s", tc.query, r.status, r.body, tc.field)
		}
	}
	for _, q := range []string{
		"/v1/health/service/web?dc=" + registrar.ConsulDatacenter + "&ns=default&stale&wait=10s",
		"/v1/catalog/service/web?index=1&wait=1000h",
	} {
		r := do(t, "GET", reg.URL+q, nil)
		if r.status != 200 || r.header.Get("X-Consul-Index") == "" || r.header.Get("X-Consul-Index") == "0" ||
			r.header.Get("X-Consul-LastContact") != "0" {
			t.Errorf("%s: %d %v %s", q, r.status, r.header, r.body)
		}
	}
}

// TestConsulIndexNeverBackwards: the X-Consul-Index of one query is never 0
// and never goes backwards, whatever happens to the service (registered,
// an instance deregistered, emptied, deleted, registered again) or beside
// it.
func TestConsulIndexNeverBackwards(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	last := map[string]uint64{}
	check := func(step string) {
		t.Helper()
		for _, path := range []string{"/v1/health/service/web", "/v1/catalog/service/web", "/v1/catalog/services"} {
			r := do(t, "GET", reg.URL+path, nil)
			idx, err := strconv.ParseUint(r.header.Get("X-Consul-Index"), 10, 64)
			if r.status != 200 || err != nil || idx == 0 || idx < last[path] {
				t.Errorf("%s: %s: %d, index %q (was %d)", step, path, r.status, r.header.Get("X-Consul-Index"), last[path])
			}
			last[path] = idx
		}
	}
	admin := func(method, path string, want int) {
		t.Helper()
		if r := do(t, method, reg.URL+path, nil); r.status != want {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
	}
	check("before any service")
	register(t, reg.URL, "web", regBody("a"))
	check("web registered")
	register(t, reg.URL, "web", regBody("b"))
	register(t, reg.URL, "db", regBody("d"))
	check("another instance and another service")
	admin("DELETE", "/v1/services/web/instances/b", 204)
	check("an instance deregistered")
	admin("DELETE", "/v1/services/web/instances/a", 204)
	check("web emptied")
	admin("DELETE", "/v1/services/web", 204)
	check("web deleted")
	register(t, reg.URL, "db", regBody("e"))
	check("db changed while web is absent")
	register(t, reg.URL, "web", regBody("a"))
	check("web registered again")
}
