package registrar_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// consulClient is the official Consul Go client pointed at reg.
func consulClient(t *testing.T, reg *testenv.Registrar, token string) *consul.Client {
	t.Helper()
	c, err := consul.NewClient(&consul.Config{Address: reg.Addr, Scheme: "http", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConsulCatalogAndHealth: the official Consul client lists services
// with their tags, reads a service's instances from the catalog (all of
// them, Consul's field names filled in) and from the health endpoint (with
// passingOnly, only the healthy ones; an instance in maintenance carries a
// critical _service_maintenance check, a draining one a critical
// _netsel_drain check; a service with no instance left is not listed), and
// finds the datacenter where Prometheus looks for it.
func TestConsulCatalogAndHealth(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 8080, Weight: 3,
		Tags: []string{"v2", "blue"}, Meta: map[string]string{"team": "core"}, Zone: "z1"})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 8081, Tags: []string{"v2"}})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "c", Address: "127.0.0.3", Port: 8082})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "d", Address: "127.0.0.4", Port: 8083})
	register(t, reg.URL, "api", api.RegisterRequest{ID: "x", Address: "127.0.0.1", Port: 9000})
	register(t, reg.URL, "gone", api.RegisterRequest{ID: "g", Address: "127.0.0.1", Port: 7000})
	if r := do(t, "DELETE", reg.URL+"/v1/services/gone/instances/g", nil); r.status != 204 {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/b/maintenance", map[string]string{"reason": "disk swap"}); r.status != 204 {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances/d/drain?deregister=false&timeout=5s", nil); r.status != 200 {
		t.Fatalf("drain: %d %s", r.status, r.body)
	}
	c := consulClient(t, reg, "")

	services, meta, err := c.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"web": {"blue", "v2"}, "api": {}}; !equalServices(services, want) {
		t.Errorf("catalog services = %v, want %v", services, want)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Errorf("query meta = %+v, want an index and a known leader", meta)
	}

	cat, _, err := c.Catalog().Service("web", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := catalogIDs(cat); !slices.Equal(ids, []string{"a", "b", "c", "d"}) {
		t.Fatalf("catalog service web = %v, want a, b, c, d (every state)", ids)
	}
	a := cat[0]
	if a.ServiceName != "web" || a.ServiceAddress != "127.0.0.1" || a.ServicePort != 8080 || a.Node != "127.0.0.1" ||
		a.Address != "127.0.0.1" || a.Datacenter != registrar.ConsulDatacenter || a.ServiceWeights.Passing != 3 ||
		a.ServiceMeta["team"] != "core" || a.ServiceMeta["netsel_zone"] != "z1" || a.ServiceMeta["netsel_vip"] == "" ||
		a.ModifyIndex == 0 || !slices.Equal(a.ServiceTags, []string{"v2", "blue"}) {
		t.Errorf("catalog instance a = %+v", a)
	}
	tagged, _, err := c.Catalog().ServiceMultipleTags("web", []string{"v2", "blue"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := catalogIDs(tagged); !slices.Equal(ids, []string{"a"}) {
		t.Errorf("catalog web with tags v2 and blue = %v, want [a]", ids)
	}

	healthy, _, err := c.Health().Service("web", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := entryIDs(healthy); !slices.Equal(ids, []string{"a", "c"}) {
		t.Errorf("health web passing = %v, want [a c]", ids)
	}
	all, _, err := c.Health().Service("web", "v2", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := entryIDs(all); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("health web tag v2 = %v, want [a b]", ids)
	}
	if s := all[0].Checks.AggregatedStatus(); s != consul.HealthPassing {
		t.Errorf("a's status = %s, want passing", s)
	}
	b := all[1]
	if s := b.Checks.AggregatedStatus(); s != consul.HealthMaint {
		t.Errorf("b (maintenance) status = %s, want maintenance (Consul's client reads the _service_maintenance check so)", s)
	}
	if !slices.ContainsFunc(b.Checks, func(hc *consul.HealthCheck) bool {
		return strings.HasPrefix(hc.CheckID, "_service_maintenance:") && hc.Notes == "disk swap"
	}) {
		t.Errorf("b's checks %v lack a _service_maintenance check with the reason", b.Checks)
	}
	if b.Service.Address != "127.0.0.2" || b.Service.Port != 8081 || b.Node.Address != "127.0.0.2" {
		t.Errorf("b = %+v on %+v", b.Service, b.Node)
	}
	drained, _, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := drained[len(drained)-1]; d.Service.ID != "d" || d.Checks.AggregatedStatus() != consul.HealthCritical ||
		!slices.ContainsFunc(d.Checks, func(hc *consul.HealthCheck) bool { return strings.HasPrefix(hc.CheckID, "_netsel_drain:") }) {
		t.Errorf("draining d = %+v with checks %v; want critical with a _netsel_drain check", d.Service, d.Checks)
	}
	none, meta, err := c.Health().Service("nosuch", "", false, nil)
	if err != nil || len(none) != 0 || meta.LastIndex == 0 {
		t.Errorf("unknown service: %v, index %d, %v; want [] with an index", none, meta.LastIndex, err)
	}

	self, err := c.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := self["Config"]["Datacenter"].(string); dc != registrar.ConsulDatacenter {
		t.Errorf("agent self Config.Datacenter = %v", self["Config"]["Datacenter"])
	}
	if dcs, err := c.Catalog().Datacenters(); err != nil || !slices.Equal(dcs, []string{registrar.ConsulDatacenter}) {
		t.Errorf("datacenters = %v, %v", dcs, err)
	}
	if l, err := c.Status().Leader(); err != nil || l == "" {
		t.Errorf("leader = %q, %v", l, err)
	}
	if p, err := c.Status().Peers(); err != nil || len(p) == 0 {
		t.Errorf("peers = %q, %v", p, err)
	}
	nodes, _, err := c.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	if !slices.Equal(names, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
		t.Errorf("nodes = %v", names)
	}
}

// TestConsulBlocking: a blocking health query (the client's WaitIndex)
// returns soon after an instance of its service registers or deregisters,
// and does not return for a change to another service (it runs to its
// wait and answers the same index); the services list wakes on any change.
func TestConsulBlocking(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 8080})
	c := consulClient(t, reg, "")
	_, meta, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	index := meta.LastIndex

	type answer struct {
		ids   []string
		index uint64
		took  time.Duration
		err   error
	}
	query := func(name string, index uint64, wait time.Duration) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			es, m, err := c.Health().Service(name, "", false, &consul.QueryOptions{WaitIndex: index, WaitTime: wait})
			a := answer{ids: entryIDs(es), took: time.Since(start), err: err}
			if m != nil {
				a.index = m.LastIndex
			}
			ch <- a
		}()
		return ch
	}
	within := func(ch <-chan answer, d time.Duration, what string) answer {
		t.Helper()
		select {
		case a := <-ch:
			if a.err != nil {
				t.Fatalf("%s: %v", what, a.err)
			}
			return a
		case <-time.After(d):
			t.Fatalf("%s: no answer within %v", what, d)
		}
		return answer{}
	}

	// Another service changes while web's query waits: web's query runs to
	// the end of its wait and answers the same index.
	other := query("web", index, 2*time.Second)
	list := make(chan error, 1)
	go func() {
		_, m, err := c.Catalog().Services(&consul.QueryOptions{WaitIndex: index, WaitTime: 20 * time.Second})
		if err == nil && m.LastIndex <= index {
			err = errors.New("services list answered without a newer index")
		}
		list <- err
	}()
	register(t, reg.URL, "db", api.RegisterRequest{ID: "d", Address: "127.0.0.1", Port: 5432})
	select {
	case err := <-list:
		if err != nil {
			t.Fatalf("blocking services list: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking services list did not wake for a new service")
	}
	a := within(other, 10*time.Second, "web query during a change to db")
	if a.index != index || a.took < 1900*time.Millisecond {
		t.Errorf("web query during a change to db: index %d (was %d) after %v; want it to wait out its 2s with the same index", a.index, index, a.took)
	}

	// web itself changes: the query answers at once.
	ch := query("web", index, 60*time.Second)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 8080})
	a = within(ch, 5*time.Second, "web query during a registration to web")
	if a.index <= index || !slices.Equal(a.ids, []string{"a", "b"}) {
		t.Fatalf("after registering b: %v at index %d (was %d)", a.ids, a.index, index)
	}
	index = a.index
	ch = query("web", index, 60*time.Second)
	if r := do(t, "DELETE", reg.URL+"/v1/services/web/instances/a", nil); r.status != 204 {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	a = within(ch, 5*time.Second, "web query during a deregistration from web")
	if a.index <= index || !slices.Equal(a.ids, []string{"b"}) {
		t.Fatalf("after deregistering a: %v at index %d (was %d)", a.ids, a.index, index)
	}
}

func equalServices(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || !slices.Equal(g, v) {
			return false
		}
	}
	return true
}

func catalogIDs(cs []*consul.CatalogService) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ServiceID)
	}
	return ids
}

func entryIDs(es []*consul.ServiceEntry) []string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.Service.ID)
	}
	return ids
}
