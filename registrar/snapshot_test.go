package registrar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

const snapTokens = `ops-token-0123456789 actions=admin name=ops
web-token-0123456789 actions=register name=deployer
dash-token-0123456789 actions=read name=dashboard
`

var ops = bearer("ops-token-0123456789")

// persistent returns the service and VIP keys of etcd with their values
// and mod revisions.
func persistent(t testing.TB, c *clientv3.Client) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]string{}
	for _, p := range []string{ks.ServicesPrefix(), ks.VIPsPrefix()} {
		resp, err := c.Get(ctx, p, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
		}
	}
	return out
}

func saveSnapshot(t testing.TB, base string) api.Snapshot {
	t.Helper()
	r := do(t, "GET", base+"/v1/backup", nil, ops...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/backup: %d %s", r.status, r.body)
	}
	var snap api.Snapshot
	r.decode(t, &snap)
	return snap
}

func startSnapRegistrar(t *testing.T, opts ...testenv.RegistrarOption) (*testenv.Etcd, *testenv.Registrar) {
	etcd := testenv.StartEtcd(t)
	file := tokenFile(t, snapTokens)
	opts = append([]testenv.RegistrarOption{func(c *registrar.Config) { c.TokenFile = file }}, opts...)
	return etcd, testenv.StartRegistrar(t, etcd.URL, opts...)
}

func registerAs(t testing.TB, base, svc, body string) api.RegisterResponse {
	t.Helper()
	r := do(t, "POST", base+"/v1/services/"+svc+"/instances", body, bearer("web-token-0123456789")...)
	if r.status != http.StatusOK {
		t.Fatalf("register %s: %d %s", svc, r.status, r.body)
	}
	var out api.RegisterResponse
	r.decode(t, &out)
	return out
}

// TestSnapshotRoundTrip: a snapshot saved, the services deleted, then
// restored gives back every service with its VIP and ports, and an
// instance registered again gets its service's old VIP.
func TestSnapshotRoundTrip(t *testing.T) {
	etcd, reg := startSnapRegistrar(t)
	vips := map[string]netip.Addr{}
	for _, svc := range []string{"web", "api", "db"} {
		a := registerAs(t, reg.URL, svc, `{"id":"i1","address":"127.0.0.1","port":8080,"ports":{"admin":9090}}`)
		vips[svc] = a.VIP
	}
	snap := saveSnapshot(t, reg.URL)
	if snap.Version != api.SnapshotVersion || snap.Revision == 0 || snap.Taken.IsZero() || len(snap.Services) != 3 {
		t.Fatalf("snapshot = %+v", snap)
	}
	for _, s := range snap.Services {
		if s.VIP != vips[s.Name] || len(s.Ports) != 1 || s.Ports[0].Port != 9090 {
			t.Errorf("snapshot service %+v: want VIP %s and port admin 9090", s, vips[s.Name])
		}
	}
	before := persistent(t, etcd.Client)
	doc, _ := json.Marshal(snap)

	// Wipe: deregister the instances and delete the services.
	for svc := range vips {
		if r := do(t, "DELETE", reg.URL+"/v1/services/"+svc+"/instances/i1", nil, ops...); r.status != http.StatusNoContent {
			t.Fatalf("deregister %s: %d %s", svc, r.status, r.body)
		}
		if r := do(t, "DELETE", reg.URL+"/v1/services/"+svc, nil, ops...); r.status != http.StatusNoContent {
			t.Fatalf("delete %s: %d %s", svc, r.status, r.body)
		}
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Fatalf("after the wipe etcd holds %q", k)
	}

	r := do(t, "PUT", reg.URL+"/v1/backup", doc, ops...)
	if r.status != http.StatusOK {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	var res api.RestoreResponse
	r.decode(t, &res)
	if res.Services != 3 || len(res.Replaced) != 0 {
		t.Errorf("restore answered %+v", res)
	}
	after := persistent(t, etcd.Client)
	if len(after) != len(before) {
		t.Fatalf("restored keys %v, want those of %v", after, before)
	}
	for k, v := range before {
		val, _, _ := strings.Cut(v, "@")
		if got, _, _ := strings.Cut(after[k], "@"); got != val {
			t.Errorf("key %s = %q after the restore, want %q", k, got, val)
		}
	}
	for svc, vip := range vips {
		a := registerAs(t, reg.URL, svc, `{"id":"i2","address":"127.0.0.1","port":8081,"ports":{"admin":9091}}`)
		if a.VIP != vip {
			t.Errorf("%s registered again got VIP %s, want %s (its VIP before the snapshot)", svc, a.VIP, vip)
		}
	}
}

// TestSnapshotRestoreOverServices: a restore over a keyspace holding
// services is refused (409 naming "services") and changes nothing; with
// force it overwrites the services the snapshot names — a new VIP frees
// the old one — and keeps the others; a snapshot VIP held by a kept service
// is refused whole.
func TestSnapshotRestoreOverServices(t *testing.T) {
	etcd, reg := startSnapRegistrar(t)
	web := registerAs(t, reg.URL, "web", `{"id":"w1","address":"127.0.0.1","port":8080}`)
	api1 := registerAs(t, reg.URL, "api", `{"id":"a1","address":"127.0.0.1","port":8080}`)
	snap := saveSnapshot(t, reg.URL)
	doc, _ := json.Marshal(snap)
	before := persistent(t, etcd.Client)

	r := do(t, "PUT", reg.URL+"/v1/backup", doc, ops...)
	if e := r.apiError(t); r.status != http.StatusConflict || e.Field != "services" || !strings.Contains(e.Error, "2 services") {
		t.Fatalf("restore over services: %d %s, want 409 naming services", r.status, r.body)
	}
	if after := persistent(t, etcd.Client); !maps.Equal(after, before) {
		t.Fatalf("a refused restore changed etcd:\nbefore %v\nafter  %v", before, after)
	}

	// A snapshot giving api's VIP to a new service, api not named: 409.
	steal := api.Snapshot{Version: 1, Services: []api.SnapshotService{
		{Name: "thief", VIP: api1.VIP, Ports: []api.Port{{Name: "default", Port: 80, Protocol: "tcp"}}},
	}}
	r = do(t, "PUT", reg.URL+"/v1/backup?force=true", steal, ops...)
	if e := r.apiError(t); r.status != http.StatusConflict || e.Field != "services[0].vip" || !strings.Contains(e.Error, "api") {
		t.Fatalf("restore taking a kept service's VIP: %d %s, want 409 naming services[0].vip and api", r.status, r.body)
	}
	if after := persistent(t, etcd.Client); !maps.Equal(after, before) {
		t.Fatalf("a refused forced restore changed etcd:\nbefore %v\nafter  %v", before, after)
	}

	// Force: web moves to a new VIP (its old one is freed), new appears,
	// api is kept.
	var free []netip.Addr // two VIPs no service holds
	for ip := netip.MustParseAddr("127.77.200.1"); len(free) < 2; ip = ip.Next() {
		if ip != web.VIP && ip != api1.VIP {
			free = append(free, ip)
		}
	}
	newVIP, newVIP2 := free[0], free[1]
	forced := api.Snapshot{Version: 1, Services: []api.SnapshotService{
		{Name: "web", VIP: newVIP, Ports: []api.Port{{Name: "default", Port: 8080, Protocol: "tcp"}}},
		{Name: "new", VIP: newVIP2, Ports: []api.Port{{Name: "default", Port: 81, Protocol: "tcp"}}},
	}}
	r = do(t, "PUT", reg.URL+"/v1/backup?force=true", forced, ops...)
	if r.status != http.StatusOK {
		t.Fatalf("forced restore: %d %s", r.status, r.body)
	}
	var res api.RestoreResponse
	r.decode(t, &res)
	if res.Services != 2 || len(res.Replaced) != 1 || res.Replaced[0] != "web" {
		t.Errorf("forced restore answered %+v, want 2 services, web replaced", res)
	}
	after := persistent(t, etcd.Client)
	value := func(key string) string { v, _, _ := strings.Cut(after[key], "@"); return v }
	if _, held := after[ks.VIPKey(web.VIP)]; held || value(ks.VIPKey(newVIP)) != "web" || value(ks.VIPKey(newVIP2)) != "new" || value(ks.VIPKey(api1.VIP)) != "api" {
		t.Errorf("VIP reservations after the forced restore: %v", after)
	}
	if after[ks.ServiceKey("api")] != before[ks.ServiceKey("api")] || after[ks.VIPKey(api1.VIP)] != before[ks.VIPKey(api1.VIP)] {
		t.Errorf("the forced restore touched api, which the snapshot does not name")
	}
	if len(after) != 6 {
		t.Errorf("etcd holds %d service and VIP keys, want 6: %v", len(after), after)
	}
	if a := registerAs(t, reg.URL, "web", `{"id":"w1","address":"127.0.0.1","port":8080}`); a.VIP != newVIP {
		t.Errorf("web registered again got VIP %s, want the snapshot's %s", a.VIP, newVIP)
	}
}

// TestSnapshotRestoreHostile: a snapshot that is not one, or holds a record
// the registrar would never write, is a 4xx naming the field, and nothing is
// written.
func TestSnapshotRestoreHostile(t *testing.T) {
	etcd, reg := startSnapRegistrar(t, func(c *registrar.Config) { c.Limits.MaxServices = 5 })
	svc := func(name, vip string, port int, proto string) string {
		return fmt.Sprintf(`{"name":%q,"vip":%q,"ports":[{"name":"default","port":%d,"protocol":%q}],"created":"2026-01-01T00:00:00Z"}`, name, vip, port, proto)
	}
	doc := func(services ...string) string {
		return `{"version":1,"taken":"2026-01-01T00:00:00Z","revision":7,"services":[` + strings.Join(services, ",") + `]}`
	}
	ok := svc("web", "127.77.0.10", 80, "tcp")
	many := make([]string, 6)
	for i := range many {
		many[i] = svc(fmt.Sprintf("s%d", i), fmt.Sprintf("127.77.1.%d", i+1), 80, "tcp")
	}
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"wrong version", strings.Replace(doc(ok), `"version":1`, `"version":2`, 1), 400, "version"},
		{"no version", `{"services":[` + ok + `]}`, 400, "version"},
		{"no services", `{"version":1}`, 400, "services"},
		{"not an address", doc(ok, svc("api", "not-an-ip", 80, "tcp")), 400, ""},
		{"VIP outside the range", doc(ok, svc("api", "10.0.0.1", 80, "tcp")), 400, "services[1].vip"},
		{"IPv4-mapped VIP", doc(svc("api", "::ffff:127.77.0.11", 80, "tcp")), 400, "services[0].vip"},
		{"network address", doc(svc("api", "127.77.0.0", 80, "tcp")), 400, "services[0].vip"},
		{"broadcast address", doc(svc("api", "127.77.255.255", 80, "tcp")), 400, "services[0].vip"},
		{"VIP twice", doc(ok, svc("api", "127.77.0.10", 81, "tcp")), 400, "services[1].vip"},
		{"name twice", doc(ok, svc("web", "127.77.0.11", 80, "tcp")), 400, "services[1].name"},
		{"name with a slash", doc(svc("../vips/127.77.0.12", "127.77.0.12", 80, "tcp")), 400, "services[0].name"},
		{"name with a newline", doc(svc("web\napi", "127.77.0.12", 80, "tcp")), 400, "services[0].name"},
		{"empty name", doc(svc("", "127.77.0.12", 80, "tcp")), 400, "services[0].name"},
		{"port 0", doc(svc("api", "127.77.0.12", 0, "tcp")), 400, "services[0].ports[0].port"},
		{"bad protocol", doc(svc("api", "127.77.0.12", 80, "sctp")), 400, "services[0].ports[0].protocol"},
		{"no ports", doc(`{"name":"api","vip":"127.77.0.12","ports":[]}`), 400, "services[0].ports"},
		{"unknown field", doc(`{"name":"api","vip":"127.77.0.12","ports":[{"name":"default","port":80,"protocol":"tcp"}],"lease":5}`), 400, "lease"},
		{"more services than the limit", doc(many...), 400, "services"},
		{"not JSON", `{"version":1,"services":[`, 400, "body"},
		{"huge", doc(ok) + strings.Repeat(" ", registrar.MaxSnapshotBytes), 413, "body"},
		{"huge padding inside", `{"version":1,"services":[],"taken":"` + strings.Repeat("x", registrar.MaxSnapshotBytes) + `"}`, 413, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range []string{"", "?force=true"} {
				r := do(t, "PUT", reg.URL+"/v1/backup"+q, tc.body, ops...)
				e := r.apiError(t)
				if r.status != tc.status || (tc.field != "" && e.Field != tc.field) {
					t.Errorf("PUT /v1/backup%s: %d %s, want %d naming %q", q, r.status, r.body, tc.status, tc.field)
				}
				if k := keys(t, etcd.Client); len(k) != 0 {
					t.Fatalf("a refused restore wrote %q", k)
				}
			}
		})
	}
}

// TestSnapshotNeedsAdmin: saving and restoring are admin actions.
func TestSnapshotNeedsAdmin(t *testing.T) {
	etcd, reg := startSnapRegistrar(t)
	doc := `{"version":1,"services":[{"name":"web","vip":"127.77.0.10","ports":[{"name":"default","port":80,"protocol":"tcp"}]}]}`
	for _, tc := range []struct {
		token  string
		status int
	}{
		{"", 401},
		{"nope-nope-nope-nope", 401},
		{"web-token-0123456789", 403},
		{"dash-token-0123456789", 403},
	} {
		for _, method := range []string{"GET", "PUT"} {
			var body any
			if method == "PUT" {
				body = doc
			}
			r := do(t, method, reg.URL+"/v1/backup", body, bearer(tc.token)...)
			if r.status != tc.status || r.apiError(t).Field != "Authorization" {
				t.Errorf("%s /v1/backup with token %q: %d %s, want %d", method, tc.token, r.status, r.body, tc.status)
			}
		}
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Fatalf("a refused restore wrote %q", k)
	}
}

// manyServices returns a snapshot of n services.
func manyServices(n int) api.Snapshot {
	snap := api.Snapshot{Version: 1, Services: make([]api.SnapshotService, n)}
	for i := range n {
		snap.Services[i] = api.SnapshotService{
			Name:  fmt.Sprintf("svc-%03d", i),
			VIP:   netip.AddrFrom4([4]byte{127, 77, byte(1 + i/250), byte(1 + i%250)}),
			Ports: []api.Port{{Name: "default", Port: 80, Protocol: "tcp"}},
		}
	}
	return snap
}

// TestSnapshotRestoreLarge: a restore of more services than etcd's default
// 128 operations a transaction allows is one transaction still: the
// embedded etcd allows it; an etcd that does not refuses it whole, answered
// 507 naming --max-txn-ops, and nothing is written.
func TestSnapshotRestoreLarge(t *testing.T) {
	snap := manyServices(300)
	t.Run("embedded default", func(t *testing.T) {
		etcd, reg := startSnapRegistrar(t)
		r := do(t, "PUT", reg.URL+"/v1/backup", snap, ops...)
		if r.status != http.StatusOK {
			t.Fatalf("restore of 300 services: %d %s", r.status, r.body)
		}
		if n := len(persistent(t, etcd.Client)); n != 600 {
			t.Errorf("etcd holds %d service and VIP keys, want 600", n)
		}
		if got := saveSnapshot(t, reg.URL); len(got.Services) != 300 {
			t.Errorf("saved %d services, want 300", len(got.Services))
		}
	})
	t.Run("etcd at 128 ops", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		srv, err := embedetcd.Start(ctx, embedetcd.Config{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", MaxTxnOps: 128})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		file := tokenFile(t, snapTokens)
		reg := testenv.StartRegistrar(t, srv.ClientURL(), func(c *registrar.Config) { c.TokenFile = file })
		r := do(t, "PUT", reg.URL+"/v1/backup", snap, ops...)
		if e := r.apiError(t); r.status != http.StatusInsufficientStorage || e.Field != "services" || !strings.Contains(e.Error, "--max-txn-ops") {
			t.Fatalf("restore over a 128-op etcd: %d %s, want 507 naming --max-txn-ops", r.status, r.body)
		}
		if n := len(persistent(t, testenv.NewClient(t, srv.ClientURL()))); n != 0 {
			t.Errorf("a refused restore wrote %d keys", n)
		}
	})
}
