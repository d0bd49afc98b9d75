package registrar_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// instances returns the instances of svc the API lists with query q
// ("" for the default listing).
func instances(t *testing.T, base, svc, q string) map[string]api.InstanceView {
	t.Helper()
	r := do(t, "GET", base+"/v1/services/"+svc+q, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get %s%s: %d %s", svc, q, r.status, r.body)
	}
	var v api.ServiceView
	r.decode(t, &v)
	out := map[string]api.InstanceView{}
	for _, in := range v.Instances {
		out[in.ID] = in
	}
	return out
}

// TestMaintenance: PUT takes an instance out of the default listing and
// shows it in maintenance, with its reason, under ?state=any; a second PUT
// keeps the time it began; DELETE puts it back; both are idempotent.
func TestMaintenance(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
	path := reg.URL + "/v1/services/web/instances/a/maintenance"

	if r := do(t, "PUT", path, api.MaintenanceRequest{Reason: "disk swap"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance on: %d %s", r.status, r.body)
	}
	if got := instances(t, reg.URL, "web", ""); len(got) != 1 || got["b"].ID == "" {
		t.Errorf("default listing in maintenance: %v, want only b", got)
	}
	all := instances(t, reg.URL, "web", "?state=any")
	a := all["a"]
	if len(all) != 2 || a.State != catalog.StateMaintenance || a.Reason != "disk swap" || a.Since.IsZero() {
		t.Fatalf("?state=any: %+v, want a in maintenance for \"disk swap\"", all)
	}
	if got := instances(t, reg.URL, "web", "?state=maintenance"); len(got) != 1 || got["a"].ID == "" {
		t.Errorf("?state=maintenance: %v, want a", got)
	}
	// Again, without a body: the same state, the reason cleared, the
	// beginning kept.
	if r := do(t, "PUT", path, nil); r.status != http.StatusNoContent {
		t.Fatalf("maintenance on again: %d %s", r.status, r.body)
	}
	again := instances(t, reg.URL, "web", "?state=any")["a"]
	if again.State != catalog.StateMaintenance || !again.Since.Equal(a.Since) || again.Reason != "" {
		t.Errorf("after a second PUT: %+v, want maintenance since %v with no reason", again, a.Since)
	}
	// The stale index read agrees.
	if got := instances(t, reg.URL, "web", "?stale"); len(got) != 1 {
		t.Errorf("?stale listing in maintenance: %v, want only b", got)
	}

	for range 2 {
		if r := do(t, "DELETE", path, nil); r.status != http.StatusNoContent {
			t.Fatalf("maintenance off: %d %s", r.status, r.body)
		}
	}
	back := instances(t, reg.URL, "web", "")
	if len(back) != 2 || back["a"].State != catalog.StatePassing {
		t.Errorf("after DELETE: %+v, want a and b passing", back)
	}
}

// TestMaintenanceRefused: an unknown instance is a 404, an overlong reason
// or a bad body a 400 naming its field, a token of another service a 403.
func TestMaintenanceRefused(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = tokenFile(t, scopedTokens) })
	ops := bearer("ops-token-0123456789")
	if r := do(t, "POST", reg.URL+"/v1/services/db/instances", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 5432}, ops...); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	base := reg.URL + "/v1/services/db/instances/"
	for _, tc := range []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		field              string
	}{
		{"unknown instance", "PUT", base + "nosuch/maintenance", nil, ops, 404, ""},
		{"unknown instance, off", "DELETE", base + "nosuch/maintenance", nil, ops, 404, ""},
		{"unknown service", "PUT", reg.URL + "/v1/services/nosuch/instances/a/maintenance", nil, ops, 404, ""},
		{"unknown instance, drain", "POST", base + "nosuch/drain", nil, ops, 404, ""},
		{"overlong reason", "PUT", base + "a/maintenance", api.MaintenanceRequest{Reason: strings.Repeat("x", catalog.MaxReasonLength+1)}, ops, 400, "reason"},
		{"unknown field", "PUT", base + "a/maintenance", `{"why":"x"}`, ops, 400, "why"},
		{"bad id", "PUT", base + "A_B/maintenance", nil, ops, 400, "id"},
		{"no token", "PUT", base + "a/maintenance", nil, nil, 401, "Authorization"},
		{"other service's token", "PUT", base + "a/maintenance", nil, bearer("web-token-0123456789"), 403, "Authorization"},
		{"other service's token, off", "DELETE", base + "a/maintenance", nil, bearer("web-token-0123456789"), 403, "Authorization"},
		{"other service's token, drain", "POST", base + "a/drain", nil, bearer("web-token-0123456789"), 403, "Authorization"},
		{"read token", "PUT", base + "a/maintenance", nil, bearer("dash-token-0123456789"), 403, "Authorization"},
		{"bad timeout", "POST", base + "a/drain?timeout=forever", nil, ops, 400, "timeout"},
		{"timeout too long", "POST", base + "a/drain?timeout=11m", nil, ops, 400, "timeout"},
		{"bad wait", "POST", base + "a/drain?wait=requests", nil, ops, 400, "wait"},
		{"bad deregister", "POST", base + "a/drain?deregister=maybe", nil, ops, 400, "deregister"},
	} {
		r := do(t, tc.method, tc.path, tc.body, tc.hdr...)
		if r.status != tc.status || (tc.field != "" && r.apiError(t).Field != tc.field) {
			t.Errorf("%s: %d %s, want %d field %q", tc.name, r.status, r.body, tc.status, tc.field)
		}
	}
	// Nothing of the refused requests is left.
	if ks := keys(t, etcd.Client); len(ks) != 3 {
		t.Errorf("keys %v, want the service, its VIP and its instance", ks)
	}
}

// TestReregistrationKeepsMaintenanceNotDrain: registering an instance
// again puts it under a new lease and revokes the old one; its maintenance
// goes over to the new lease, in the same transaction, whether the index
// has seen it yet or not; a drain does not — it ends with the registration
// it drained, and whoever registers the id again is ready for traffic.
func TestReregistrationKeepsMaintenanceNotDrain(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	req := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80, TTL: api.Duration(30 * time.Second)}
	register(t, reg.URL, "web", req)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a/maintenance", api.MaintenanceRequest{Reason: "upgrade"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances/b/drain?deregister=false&timeout=1s", nil); r.status != http.StatusOK {
		t.Fatalf("drain: %d %s", r.status, r.body)
	}
	for i := range 3 {
		// Once at once (the index may not show the keys yet), then after
		// the index has caught up.
		ra := register(t, reg.URL, "web", req)
		rb := register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
		all := instances(t, reg.URL, "web", "?state=any")
		if all["a"].State != catalog.StateMaintenance || all["a"].Reason != "upgrade" || all["b"].State != catalog.StatePassing {
			t.Fatalf("re-registration %d: %+v, want a in maintenance and b passing (a registration ends a drain)", i, all)
		}
		for _, l := range leases(t, etcd.Client) {
			if int64(l.ID) != ra.Lease && int64(l.ID) != rb.Lease {
				t.Errorf("re-registration %d left lease %x", i, l.ID)
			}
		}
		testenv.Eventually(t, 5*time.Second, func() bool {
			all := instances(t, reg.URL, "web", "?stale&state=any")
			return all["a"].State == catalog.StateMaintenance && all["b"].State == catalog.StatePassing
		}, "the index does not show a in maintenance and b passing")
	}
	// Ending them still works after the move.
	do(t, "DELETE", reg.URL+"/v1/services/web/instances/a/maintenance", nil)
	if r := do(t, "DELETE", reg.URL+"/v1/services/web/instances/b/drain", nil); r.status != http.StatusNoContent {
		t.Fatalf("end drain: %d %s", r.status, r.body)
	}
	register(t, reg.URL, "web", req)
	if got := instances(t, reg.URL, "web", ""); len(got) != 2 {
		t.Errorf("after ending maintenance and drain and registering again: %+v, want a and b listed", got)
	}
}

// TestReregistrationIndexBehind: a re-registration through a registrar
// whose index has not seen the instance's maintenance and drain (another
// registrar set them a moment ago) still carries them to the new lease:
// the transaction checks what the index says and, when it is behind,
// reads etcd and tries again.
func TestReregistrationIndexBehind(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ix := catalog.NewIndex(testenv.NewClient(t, etcd.URL), ks, catalog.IndexOptions{})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); ix.Run(ctx) }()
	defer func() { stop(); <-ran }()
	behind := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.Index = ix })
	other := testenv.StartRegistrar(t, etcd.URL)
	req := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80}
	register(t, behind.URL, "web", req)
	testenv.Eventually(t, 5*time.Second, func() bool {
		e, ok := ix.Snapshot().Service("web")
		if !ok {
			return false
		}
		_, ok = e.Instance("a")
		return ok
	}, "the index does not show web/a")
	stop() // the index stays where it is: it misses what follows
	<-ran
	if r := do(t, "PUT", other.URL+"/v1/services/web/instances/a/maintenance", api.MaintenanceRequest{Reason: "r"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	first := instances(t, other.URL, "web", "?state=any")["a"]
	register(t, behind.URL, "web", req)
	if a := instances(t, other.URL, "web", "?state=any")["a"]; a.State != catalog.StateMaintenance || a.Reason != "r" {
		t.Errorf("after a re-registration through a registrar whose index is behind: %+v, want in maintenance", a)
	}
	// Maintenance again, through the registrar that has not seen it: the
	// new reason, the time it began kept.
	if r := do(t, "PUT", behind.URL+"/v1/services/web/instances/a/maintenance", api.MaintenanceRequest{Reason: "r2"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance again: %d %s", r.status, r.body)
	}
	if a := instances(t, other.URL, "web", "?state=any")["a"]; a.Reason != "r2" || !a.Since.Equal(first.Since) {
		t.Errorf("maintenance again through a registrar whose index is behind: %+v, want reason r2 since %v", a, first.Since)
	}
}

// TestRevivedKeepsMaintenance: an instance whose lease etcd let expire
// while it could not answer its heartbeats is put back under a new lease
// with its maintenance (which went with the old lease).
func TestRevivedKeepsMaintenance(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	a := register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80, TTL: api.Duration(10 * time.Second)})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a/maintenance", api.MaintenanceRequest{Reason: "r"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		return instances(t, reg.URL, "web", "?stale&state=any")["a"].State == catalog.StateMaintenance
	}, "the index does not show a in maintenance")
	reg.Registrar.MissedForTest("web", "a")
	if _, err := etcd.Client.Revoke(context.Background(), clientv3.LeaseID(a.Lease)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, ok := instances(t, reg.URL, "web", "?state=any")["a"]
		return ok
	}, "a was not put back")
	if got := instances(t, reg.URL, "web", "?state=any")["a"]; got.State != catalog.StateMaintenance || got.Reason != "r" {
		t.Errorf("put back: %+v, want in maintenance", got)
	}
}
