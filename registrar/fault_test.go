package registrar_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestEtcdUnreachable cuts the network between the registrar and etcd:
// every call that needs etcd answers 503 with Retry-After before the
// request deadline, and works again once the network is back.
func TestEtcdUnreachable(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	const reqTimeout = 3 * time.Second
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) {
		c.RequestTimeout = reqTimeout
		c.EtcdTimeout = time.Second
	})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, ok := reg.Registrar.Index().Snapshot().Service("web")
		return ok
	}, "index never saw web")
	time.Sleep(600 * time.Millisecond) // let the last renewal age out of the 500ms cache

	proxy.Cut()
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/services/web/instances"},
		{"PUT", "/v1/services/web/instances/a/heartbeat"},
		{"GET", "/v1/services/web"},
		{"DELETE", "/v1/services/web/instances/a"},
		{"DELETE", "/v1/services/web"},
		{"GET", "/v1/health"},
	} {
		start := time.Now()
		var body any
		if c.method == "POST" {
			body = api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 80}
		}
		r := do(t, c.method, reg.URL+c.path, body)
		took := time.Since(start)
		t.Logf("%s %s: %d in %v", c.method, c.path, r.status, took)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with etcd cut: %d (Retry-After %q) %s; want 503 with Retry-After",
				c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if took > reqTimeout+500*time.Millisecond {
			t.Errorf("%s %s took %v, past the %v request deadline", c.method, c.path, took, reqTimeout)
		}
	}
	// Reads from the index still work.
	if r := do(t, "GET", reg.URL+"/v1/services/web?stale", nil); r.status != http.StatusOK {
		t.Errorf("stale read with etcd cut: %d %s", r.status, r.body)
	}

	proxy.Restore()
	testenv.Eventually(t, 15*time.Second, func() bool {
		return do(t, "PUT", reg.URL+"/v1/services/web/instances/a/heartbeat", nil).status == http.StatusOK
	}, "heartbeat never recovered after etcd came back")
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.1", Port: 80})
	// The failed attempts left nothing: a and b, each on one live lease.
	if n := len(leases(t, etcd.Client)); n != 2 {
		t.Errorf("%d leases after recovery, want 2", n)
	}
}

// TestNoOrphanLeases registers while the network to etcd is cut and
// restored again and again, so that grants succeed whose transactions or
// revokes then fail: once etcd is reachable again, every lease left holds
// an instance (the registrar revokes the others in the background, well
// within their TTL), and every id that got a 200 is registered.
func TestNoOrphanLeases(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) {
		c.RequestTimeout = 2 * time.Second
		c.EtcdTimeout = 500 * time.Millisecond
	})
	const workers = 8
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		ok    = map[string]bool{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for i := range workers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("o-%d-%d", i, n%4)
				r := do(t, "POST", reg.URL+"/v1/services/orphans/instances",
					api.RegisterRequest{ID: id, Address: "127.0.0.1", Port: 80, TTL: api.Duration(time.Minute)})
				mu.Lock()
				codes[r.status]++
				if r.status == http.StatusOK {
					ok[id] = true
				}
				mu.Unlock()
			}
		})
	}
	// Cut and restore the network a number of times: the faults' length,
	// not waits for a condition.
	for range 12 {
		time.Sleep(150 * time.Millisecond)
		proxy.Cut()
		time.Sleep(100 * time.Millisecond)
		proxy.Restore()
	}
	close(stop)
	wg.Wait()
	t.Logf("answers: %v", codes)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Fatal("no registration failed: the cuts did not bite")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	testenv.Eventually(t, 30*time.Second, func() bool {
		ls, err := etcd.Client.Leases(ctx)
		if err != nil {
			return false
		}
		for _, l := range ls.Leases {
			ttl, err := etcd.Client.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
			if err != nil || (ttl.TTL > 0 && len(ttl.Keys) == 0) {
				return false
			}
		}
		return true
	}, "leases holding no key remain after the failed registrations: %v", lazyOrphans{etcd.Client})
	for id := range ok {
		resp, err := etcd.Client.Get(ctx, ks.InstanceKey("orphans", id))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			t.Errorf("instance orphans/%s got a 200 and is gone", id)
		}
	}
}

// lazyOrphans prints the leases of cli that hold no key.
type lazyOrphans struct{ cli *clientv3.Client }

func (l lazyOrphans) String() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := l.cli.Leases(ctx)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, le := range ls.Leases {
		ttl, err := l.cli.TimeToLive(ctx, le.ID, clientv3.WithAttachedKeys())
		if err == nil && ttl.TTL > 0 && len(ttl.Keys) == 0 {
			out = append(out, fmt.Sprintf("%x (ttl %d of %d)", le.ID, ttl.TTL, ttl.GrantedTTL))
		}
	}
	return fmt.Sprintf("%d of %d leases: %s", len(out), len(ls.Leases), strings.Join(out, ", "))
}
