package registrar_test

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestReregisterSameID: registering one id again replaces the instance,
// keeps the VIP and revokes the old lease.
func TestReregisterSameID(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	req := api.RegisterRequest{ID: "x", Address: "127.0.0.1", Port: 80, TTL: api.Duration(30 * time.Second)}
	a := register(t, reg.URL, "web", req)
	req.Address = "127.0.0.2"
	b := register(t, reg.URL, "web", req)
	if a.VIP != b.VIP || a.Lease == b.Lease {
		t.Fatalf("re-registration: %+v then %+v", a, b)
	}
	ls := leases(t, etcd.Client)
	if len(ls) != 1 || int64(ls[0].ID) != b.Lease {
		t.Errorf("leases %v, want only the new one %x", ls, b.Lease)
	}
	var view api.ServiceView
	do(t, "GET", reg.URL+"/v1/services/web", nil).decode(t, &view)
	if len(view.Instances) != 1 || view.Instances[0].Address.String() != "127.0.0.2" {
		t.Errorf("instances %+v, want the one re-registered", view.Instances)
	}
	// A generated id is a DNS label and differs each time.
	g1 := register(t, reg.URL, "web", api.RegisterRequest{Address: "127.0.0.1", Port: 81})
	g2 := register(t, reg.URL, "web", api.RegisterRequest{Address: "127.0.0.1", Port: 81})
	if g1.ID == "" || g1.ID == g2.ID || g1.VIP != a.VIP {
		t.Errorf("generated ids %q %q (VIP %v)", g1.ID, g2.ID, g1.VIP)
	}
	// TTL in whole seconds is accepted too.
	r := do(t, "POST", reg.URL+"/v1/services/web/instances", `{"id":"s","address":"::1","port":80,"ttl":7}`)
	var s api.RegisterResponse
	r.decode(t, &s)
	if r.status != 200 || s.TTL.Std() != 7*time.Second {
		t.Errorf("ttl 7: %d %s", r.status, r.body)
	}
}

// TestDeregisterAndDeleteService: a service with instances cannot be
// deleted; once its instances are gone, deleting frees the VIP.
func TestDeregisterAndDeleteService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "db", api.RegisterRequest{ID: "one", Address: "127.0.0.1", Port: 5432})

	r := do(t, "DELETE", reg.URL+"/v1/services/db", nil)
	if r.status != http.StatusConflict || r.apiError(t).Field != "instances" {
		t.Fatalf("delete service with an instance: %d %s, want 409 field instances", r.status, r.body)
	}
	if r := do(t, "DELETE", reg.URL+"/v1/services/db/instances/one", nil); r.status != http.StatusNoContent {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	if n := len(leases(t, etcd.Client)); n != 0 {
		t.Errorf("deregister left %d leases", n)
	}
	if r := do(t, "DELETE", reg.URL+"/v1/services/db/instances/one", nil); r.status != http.StatusNotFound {
		t.Errorf("second deregister: %d, want 404", r.status)
	}
	if r := do(t, "PUT", reg.URL+"/v1/services/db/instances/one/heartbeat", nil); r.status != http.StatusNotFound {
		t.Errorf("heartbeat after deregister: %d, want 404", r.status)
	}
	if r := do(t, "DELETE", reg.URL+"/v1/services/db", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete empty service: %d %s", r.status, r.body)
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Errorf("keys left after delete: %v", k)
	}
	if r := do(t, "GET", reg.URL+"/v1/services/db", nil); r.status != http.StatusNotFound {
		t.Errorf("get deleted service: %d, want 404", r.status)
	}
}

// TestDeleteUndecodableService: a service whose stored record does not
// decode (written by hand, or by another version) can still be deleted, and
// deleting it frees the VIP reserved in its name, and only that one.
func TestDeleteUndecodableService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "other", api.RegisterRequest{ID: "one", Address: "127.0.0.1", Port: 80})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vip := netip.MustParseAddr("127.77.200.1")
	for k, v := range map[string]string{ks.ServiceKey("broken"): "{not json", ks.VIPKey(vip): "broken"} {
		if _, err := etcd.Client.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if r := do(t, "DELETE", reg.URL+"/v1/services/broken", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete undecodable service: %d %s", r.status, r.body)
	}
	for _, k := range keys(t, etcd.Client) {
		if k == ks.ServiceKey("broken") || k == ks.VIPKey(vip) {
			t.Errorf("key %s left after deleting the service", k)
		}
	}
	if r := do(t, "GET", reg.URL+"/v1/services/other", nil); r.status != http.StatusOK {
		t.Errorf("the other service after the delete: %d %s", r.status, r.body)
	}
	if n := len(keys(t, etcd.Client)); n != 3 {
		t.Errorf("%d keys left, want the other service's 3 (service, VIP, instance)", n)
	}
}

// TestAuth: with a token file, writes need a token with the right scope;
// reads need none.
func TestAuth(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# tokens\nadmin-token-0123456789\nservice-token-0123456789 register\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = file })
	url := reg.URL + "/v1/services/web/instances"
	body := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80}
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"none", "", 401},
		{"not bearer", "Basic YTpi", 401},
		{"wrong", "Bearer nope", 401},
		{"prefix of a token", "Bearer admin", 401},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		if r := do(t, "POST", url, body, hdr...); r.status != tc.status || r.apiError(t).Field != "Authorization" {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Errorf("unauthorized writes left keys %v", k)
	}
	svc := []string{"Authorization", "Bearer service-token-0123456789"}
	if r := do(t, "POST", url, body, svc...); r.status != http.StatusOK {
		t.Fatalf("register with the service token: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", url+"/a/heartbeat", nil, svc...); r.status != http.StatusOK {
		t.Errorf("heartbeat with the service token: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", reg.URL+"/v1/services/web", nil); r.status != http.StatusOK {
		t.Errorf("read without a token: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", reg.URL+"/v1/services/web", nil, svc...); r.status != http.StatusForbidden {
		t.Errorf("admin call with the service token: %d %s, want 403", r.status, r.body)
	}
	if r := do(t, "DELETE", url+"/a", nil, "Authorization", "Bearer admin-token-0123456789"); r.status != http.StatusNoContent {
		t.Errorf("deregister with the admin token: %d %s", r.status, r.body)
	}
}

// TestHealthAndMetrics: health reports ok once synced; /metrics counts.
func TestHealthAndMetrics(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	testenv.Eventually(t, 10*time.Second, func() bool {
		return do(t, "GET", reg.URL+"/v1/health", nil).status == http.StatusOK
	}, "health never 200")
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	do(t, "POST", reg.URL+"/v1/services/web/instances", `{"address":"127.0.0.1","port":0}`)
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a/heartbeat", nil); r.status != http.StatusOK {
		t.Errorf("heartbeat: %d %s", r.status, r.body)
	}
	for series, want := range map[string]float64{
		`netsel_registrar_registrations_total{result="new"}`:                                                        1,
		`netsel_registrar_registrations_total{result="rejected"}`:                                                   1,
		`netsel_registrar_http_requests_total{code="400",method="POST",route="POST /v1/services/{name}/instances"}`: 1,
	} {
		if got := metric(t, reg.URL, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if hb := metric(t, reg.URL, `netsel_registrar_heartbeats_total{result="ok"}`) + metric(t, reg.URL, `netsel_registrar_heartbeats_total{result="cached"}`); hb != 1 {
		t.Errorf("heartbeats counted %v, want 1", hb)
	}
	body := string(do(t, "GET", reg.URL+"/metrics", nil).body)
	if !strings.Contains(body, "netsel_registrar_http_request_duration_seconds_bucket") {
		t.Error("no latency histogram in /metrics")
	}
}

// TestShutdownEndsBlockingQueries: stopping the server answers waiting
// blocking queries at once instead of holding the shutdown.
func TestShutdownEndsBlockingQueries(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, ok := reg.Registrar.Index().Snapshot().Service("web")
		return ok
	}, "index never saw web")
	r := do(t, "GET", reg.URL+"/v1/services/web?stale", nil)
	idx := r.header.Get(api.IndexHeader)
	got := make(chan int, 1)
	go func() {
		got <- do(t, "GET", reg.URL+"/v1/services/web?index="+idx+"&wait=60s", nil).status
	}()
	testenv.Eventually(t, 5*time.Second, func() bool {
		return metric(t, reg.URL, "netsel_registrar_blocking_queries") == 1
	}, "blocking query never started waiting")
	start := time.Now()
	reg.Stop()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("shutdown took %v with a blocking query waiting", took)
	}
	select {
	case s := <-got:
		if s != http.StatusOK {
			t.Errorf("blocking query answered %d at shutdown, want 200", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query not answered at shutdown")
	}
}

// TestHeartbeatBeforeIndex: an instance the index has not seen yet is
// still renewed, by reading its lease from etcd. The index given here never
// runs, so every lookup takes that path.
func TestHeartbeatBeforeIndex(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.Index = catalog.NewIndex(c.Client, c.Keyspace, catalog.IndexOptions{})
		c.Checks.Disabled = true // checks follow the index, which never runs here
	})
	a := register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80, TTL: api.Duration(20 * time.Second)})
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a/heartbeat", nil); r.status != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	// Registering again must not take a second VIP although the index is
	// empty: the transaction sees the service exists.
	b := register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 80})
	if b.VIP != a.VIP {
		t.Errorf("second instance got VIP %v, first %v", b.VIP, a.VIP)
	}
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/zz/heartbeat", nil); r.status != http.StatusNotFound {
		t.Errorf("heartbeat of an unknown instance: %d", r.status)
	}
}
