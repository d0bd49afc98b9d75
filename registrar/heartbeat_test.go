package registrar_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestConcurrentHeartbeats sends many concurrent heartbeats for many
// instances: all succeed, every lease is back to its full TTL, and
// heartbeats of one lease share keep-alive requests.
func TestConcurrentHeartbeats(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	const instances, clients, rounds = 20, 64, 5
	ttl := 10 * time.Second
	lease := map[string]clientv3.LeaseID{}
	for i := range instances {
		id := fmt.Sprintf("i%d", i)
		a := register(t, reg.URL, "hb", api.RegisterRequest{ID: id, Address: "127.0.0.1", Port: 80, TTL: api.Duration(ttl)})
		lease[id] = clientv3.LeaseID(a.Lease)
	}
	remaining := func(l clientv3.LeaseID) int64 {
		r, err := etcd.Client.TimeToLive(context.Background(), l)
		if err != nil {
			t.Fatal(err)
		}
		return r.TTL
	}
	// Let the leases run down, so a renewal is visible.
	testenv.Eventually(t, 10*time.Second, func() bool { return remaining(lease["i0"]) <= 7 }, "lease not running down")

	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for c := range clients {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("i%d", (c+r)%instances)
				resp := do(t, "PUT", reg.URL+"/v1/services/hb/instances/"+id+"/heartbeat", nil)
				if resp.status != http.StatusOK {
					mu.Lock()
					failed++
					mu.Unlock()
					t.Errorf("heartbeat %s: %d %s", id, resp.status, resp.body)
				}
			}
		})
	}
	wg.Wait()
	for id, l := range lease {
		if got := remaining(l); got < int64(ttl/time.Second)-1 {
			t.Errorf("lease of %s has %ds left after heartbeats; want about %v", id, got, ttl)
		}
	}
	sent := metric(t, reg.URL, "netsel_registrar_lease_keepalive_requests_total")
	streams := metric(t, reg.URL, "netsel_registrar_lease_keepalive_streams_total")
	t.Logf("%d heartbeats -> %v keep-alive requests on %v stream(s)", clients*rounds, sent, streams)
	if sent >= clients*rounds || sent < instances {
		t.Errorf("%v keep-alive requests for %d heartbeats of %d leases: heartbeats are not shared", sent, clients*rounds, instances)
	}
	if streams != 1 {
		t.Errorf("%v keep-alive streams opened, want 1", streams)
	}
}

// TestBlockingQuery: a blocking read returns early on a change to what it
// watches, and after wait with the same index otherwise — heartbeats are
// not changes.
func TestBlockingQuery(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	register(t, reg.URL, "other", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, ok := reg.Registrar.Index().Snapshot().Service("other")
		return ok
	}, "index never saw the services")

	r := do(t, "GET", reg.URL+"/v1/services/web?index=0", nil)
	idx := r.header.Get(api.IndexHeader)
	if r.status != http.StatusOK || idx == "" || idx == "0" {
		t.Fatalf("index=0: %d index %q %s", r.status, idx, r.body)
	}

	// Early return on a change to web.
	type answer struct {
		r    *response
		took time.Duration
	}
	ch := make(chan answer, 1)
	go func() {
		start := time.Now()
		r := do(t, "GET", reg.URL+"/v1/services/web?index="+idx+"&wait=10s", nil)
		ch <- answer{r, time.Since(start)}
	}()
	// Changes elsewhere and heartbeats do not wake it.
	register(t, reg.URL, "other", api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 80})
	do(t, "PUT", reg.URL+"/v1/services/web/instances/a/heartbeat", nil)
	select {
	case a := <-ch:
		t.Fatalf("blocking query returned on an unrelated change: %d %s", a.r.status, a.r.body)
	case <-time.After(300 * time.Millisecond):
	}
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 80})
	a := <-ch
	var view api.ServiceView
	a.r.decode(t, &view)
	next := a.r.header.Get(api.IndexHeader)
	if a.took > 5*time.Second || len(view.Instances) != 2 || next == idx {
		t.Fatalf("after a change: took %v, %d instances, index %s -> %s", a.took, len(view.Instances), idx, next)
	}

	// No change: returns after wait with the same index.
	start := time.Now()
	r = do(t, "GET", reg.URL+"/v1/services/web?index="+next+"&wait=1s", nil)
	took := time.Since(start)
	if r.status != http.StatusOK || r.header.Get(api.IndexHeader) != next || took < time.Second || took > 3*time.Second {
		t.Fatalf("no change: %d index %s (want %s) after %v", r.status, r.header.Get(api.IndexHeader), next, took)
	}

	// The list blocks the same way, and wakes on any service.
	r = do(t, "GET", reg.URL+"/v1/services", nil)
	lidx := r.header.Get(api.IndexHeader)
	go func() {
		start := time.Now()
		r := do(t, "GET", reg.URL+"/v1/services?index="+lidx+"&wait=10s", nil)
		ch <- answer{r, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond) // let the query start waiting; the result holds either way
	if r := do(t, "DELETE", reg.URL+"/v1/services/other/instances/b", nil); r.status != http.StatusNoContent {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	a = <-ch
	var list api.ServiceList
	a.r.decode(t, &list)
	if a.took > 5*time.Second || a.r.header.Get(api.IndexHeader) == lidx || len(list.Services) != 2 {
		t.Fatalf("list after a change: took %v, index %s -> %s, %+v", a.took, lidx, a.r.header.Get(api.IndexHeader), list)
	}

	// Deleting a watched service wakes its watchers too.
	r = do(t, "GET", reg.URL+"/v1/services/other?stale", nil)
	oidx := r.header.Get(api.IndexHeader)
	go func() {
		start := time.Now()
		r := do(t, "GET", reg.URL+"/v1/services/other?index="+oidx+"&wait=10s", nil)
		ch <- answer{r, time.Since(start)}
	}()
	do(t, "DELETE", reg.URL+"/v1/services/other/instances/a", nil)
	if r := do(t, "DELETE", reg.URL+"/v1/services/other", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete service: %d %s", r.status, r.body)
	}
	a = <-ch
	if a.took > 5*time.Second {
		t.Fatalf("watch of a deleted service took %v", a.took)
	}
}

// TestReviveKeepsDeletedServiceDeleted: an instance whose lease was lost
// while etcd could not answer its heartbeats is put back by its next
// heartbeat, but not when its service was deleted meanwhile: the heartbeat
// answers 404 and the service stays deleted, its VIP free.
func TestReviveKeepsDeletedServiceDeleted(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	a := register(t, reg.URL, "gone", api.RegisterRequest{ID: "g-0", Address: "127.0.0.1", Port: 80, TTL: api.Duration(10 * time.Second)})

	// Etcd did not answer a heartbeat; then the lease was lost and the
	// service, empty, deleted with its VIP, as an admin's DELETE does.
	reg.Registrar.MissedForTest("gone", "g-0")
	ctx := context.Background()
	if _, err := etcd.Client.Txn(ctx).Then(
		clientv3.OpDelete(ks.InstanceKey("gone", "g-0")),
		clientv3.OpDelete(ks.ServiceKey("gone")),
		clientv3.OpDelete(ks.VIPKey(a.VIP)),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Revoke(ctx, clientv3.LeaseID(a.Lease)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return do(t, "GET", reg.URL+"/v1/services/gone?stale", nil).status == http.StatusNotFound
	}, "the registrar's index still has the service")

	if resp := do(t, "PUT", reg.URL+"/v1/services/gone/instances/g-0/heartbeat", nil); resp.status != http.StatusNotFound {
		t.Errorf("heartbeat of an instance whose service was deleted: %d %s, want 404", resp.status, resp.body)
	}
	for _, k := range []string{ks.ServiceKey("gone"), ks.VIPKey(a.VIP), ks.InstanceKey("gone", "g-0")} {
		if resp, err := etcd.Client.Get(ctx, k); err != nil || len(resp.Kvs) != 0 {
			t.Errorf("%s is back in etcd (%v)", k, err)
		}
	}
}
