package registrar_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestConcurrentRegistrations races 200 registrations of 50 services
// through two registrars on one etcd, in a small VIP range so that VIP
// candidates collide: every service must end with one VIP of its own.
func TestConcurrentRegistrations(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	small := func(c *registrar.Config) { c.VIPCIDR = netip.MustParsePrefix("127.78.0.0/25") }
	regs := []*testenv.Registrar{testenv.StartRegistrar(t, etcd.URL, small), testenv.StartRegistrar(t, etcd.URL, small)}

	const services, perService = 50, 4
	type result struct {
		svc, id string
		vip     netip.Addr
	}
	results := make(chan result, services*perService)
	var wg sync.WaitGroup
	for i := range services * perService {
		wg.Go(func() {
			svc := fmt.Sprintf("svc-%d", i%services)
			id := fmt.Sprintf("i-%d", i/services)
			r := do(t, "POST", regs[i%2].URL+"/v1/services/"+svc+"/instances",
				api.RegisterRequest{ID: id, Address: "127.0.0.1", Port: 1000 + i})
			if r.status != http.StatusOK {
				t.Errorf("register %s/%s: %d %s", svc, id, r.status, r.body)
				return
			}
			var a api.RegisterResponse
			r.decode(t, &a)
			results <- result{svc, id, a.VIP}
		})
	}
	wg.Wait()
	close(results)

	vipOf := map[string]netip.Addr{}
	for r := range results {
		if v, ok := vipOf[r.svc]; ok && v != r.vip {
			t.Errorf("service %s answered two VIPs: %v and %v", r.svc, v, r.vip)
		}
		vipOf[r.svc] = r.vip
	}
	owner := map[netip.Addr]string{}
	for svc, vip := range vipOf {
		if o, dup := owner[vip]; dup {
			t.Errorf("VIP %v handed to %s and %s", vip, o, svc)
		}
		owner[vip] = svc
	}
	if len(owner) != services {
		t.Errorf("%d distinct VIPs, want %d", len(owner), services)
	}

	// The store agrees: one VIP key per service, mapping back to it, and
	// exactly perService instances each.
	ctx := context.Background()
	resp, err := etcd.Client.Get(ctx, ks.VIPsPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != services {
		t.Errorf("%d VIP keys, want %d", len(resp.Kvs), services)
	}
	for _, kv := range resp.Kvs {
		k, _ := ks.ParseKey(string(kv.Key))
		if vipOf[string(kv.Value)] != k.VIP {
			t.Errorf("VIP key %s names %s, whose VIP is %v", kv.Key, kv.Value, vipOf[string(kv.Value)])
		}
	}
	for svc, vip := range vipOf {
		e, _, err := catalog.LoadService(ctx, etcd.Client, ks, svc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.Service == nil || e.Service.VIP != vip || e.Len() != perService {
			t.Errorf("service %s in etcd: %+v, want VIP %v and %d instances", svc, e, vip, perService)
		}
	}
	t.Logf("VIP transactions that lost a race: %v",
		metric(t, regs[0].URL, "netsel_registrar_vip_conflicts_total")+metric(t, regs[1].URL, "netsel_registrar_vip_conflicts_total"))
	if n := len(leases(t, etcd.Client)); n != services*perService {
		t.Errorf("%d leases, want one per instance (%d)", n, services*perService)
	}
}

// metric returns the value of a metric line (name with labels) in
// registrar's /metrics, or 0.
func metric(t testing.TB, base, series string) float64 {
	t.Helper()
	r := do(t, "GET", base+"/metrics", nil)
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestHeartbeatRacesReregistration heartbeats ids while they are registered
// again and again, through two registrars on one etcd and with the renewal
// cache off: a heartbeat that read a lease a re-registration has just
// replaced must renew the new one, never answer 404.
func TestHeartbeatRacesReregistration(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	noCache := func(c *registrar.Config) {
		c.RenewCacheFor = -1
		c.Limits.RegisterRate = -1 // the re-registrations come as fast as they can
	}
	regs := []*testenv.Registrar{testenv.StartRegistrar(t, etcd.URL, noCache), testenv.StartRegistrar(t, etcd.URL, noCache)}
	const (
		ids            = 4
		reregistrars   = 2 // per id
		heartbeaters   = 4 // per id
		beatsPerBeater = 300
	)
	for i := range ids {
		register(t, regs[0].URL, "race", api.RegisterRequest{ID: fmt.Sprintf("r-%d", i), Address: "127.0.0.1", Port: 1000 + i})
	}
	var (
		mu       sync.Mutex
		codes    = map[int]int{}
		notFound []string
		beaters  sync.WaitGroup
		others   sync.WaitGroup
		stop     = make(chan struct{})
	)
	for i := range ids {
		id := fmt.Sprintf("r-%d", i)
		for j := range reregistrars {
			others.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := do(t, "POST", regs[j%2].URL+"/v1/services/race/instances",
						api.RegisterRequest{ID: id, Address: "127.0.0.1", Port: 1000 + i})
					if r.status != http.StatusOK {
						t.Errorf("re-register %s: %d %s", id, r.status, r.body)
						return
					}
				}
			})
		}
		for j := range heartbeaters {
			beaters.Go(func() {
				for range beatsPerBeater {
					r := do(t, "PUT", regs[j%2].URL+"/v1/services/race/instances/"+id+"/heartbeat", nil)
					mu.Lock()
					codes[r.status]++
					if r.status == http.StatusNotFound {
						notFound = append(notFound, id+": "+string(r.body))
					}
					mu.Unlock()
				}
			})
		}
	}
	beaters.Wait()
	close(stop)
	others.Wait()
	t.Logf("heartbeat answers: %v", codes)
	if len(notFound) > 0 {
		t.Errorf("%d of %d heartbeats racing re-registrations answered 404, e.g. %s",
			len(notFound), ids*heartbeaters*beatsPerBeater, notFound[0])
	}
	if n := codes[http.StatusOK]; n != ids*heartbeaters*beatsPerBeater {
		t.Errorf("%d heartbeats answered 200, want all %d", n, ids*heartbeaters*beatsPerBeater)
	}
}
