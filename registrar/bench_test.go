package registrar_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// Benchmarks run 64 concurrent clients (b.SetParallelism) against one
// embedded etcd: through the registrar over real HTTP, and straight to
// etcd for the baseline. Run with: go test -run '^$' -bench . ./registrar/

const benchClients = 64

func setParallel(b *testing.B) {
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
}

var benchHTTP = &http.Client{Transport: &http.Transport{
	MaxIdleConns:        4 * benchClients,
	MaxIdleConnsPerHost: 4 * benchClients,
	IdleConnTimeout:     time.Minute,
}}

func benchDo(b *testing.B, method, url, body string) int {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := benchHTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkRegister: new instances of 50 services, one per request.
func BenchmarkRegister(b *testing.B) {
	etcd := testenv.StartEtcd(b)
	// One client IP: measure registrations, not the per-client rate limit.
	reg := testenv.StartRegistrar(b, etcd.URL, func(c *registrar.Config) { c.Limits.RegisterRate = -1 })
	var n atomic.Int64
	setParallel(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			url := fmt.Sprintf("%s/v1/services/svc-%d/instances", reg.URL, i%50)
			body := fmt.Sprintf(`{"id":"i%d","address":"127.0.0.1","port":8080}`, i)
			if s := benchDo(b, "POST", url, body); s != http.StatusOK {
				b.Errorf("register: %d", s)
			}
		}
	})
}

// BenchmarkHeartbeat: heartbeats of 2,000 instances, round robin, with the
// 500ms renewal cache and without it (every heartbeat one keep-alive on the
// shared stream).
func BenchmarkHeartbeat(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache time.Duration
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			etcd := testenv.StartEtcd(b)
			reg := testenv.StartRegistrar(b, etcd.URL, func(c *registrar.Config) { c.RenewCacheFor = tc.cache })
			const instances = 2000
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := w; i < instances; i += 16 {
						url := reg.URL + "/v1/services/hb/instances"
						if s := benchDo(b, "POST", url, fmt.Sprintf(`{"id":"i%d","address":"127.0.0.1","port":80,"ttl":"1h"}`, i)); s != 200 {
							b.Errorf("register: %d", s)
						}
					}
				})
			}
			wg.Wait()
			testenv.Eventually(b, 10*time.Second, func() bool {
				e, ok := reg.Registrar.Index().Snapshot().Service("hb")
				return ok && e.Len() == instances
			}, "index never saw every instance")
			var n atomic.Int64
			setParallel(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1) % instances
					if s := benchDo(b, "PUT", fmt.Sprintf("%s/v1/services/hb/instances/i%d/heartbeat", reg.URL, i), ""); s != 200 {
						b.Errorf("heartbeat: %d", s)
					}
				}
			})
		})
	}
}

// BenchmarkRawGrantPut: the etcd work of a registration without the
// registrar: Grant, then Put under the lease.
func BenchmarkRawGrantPut(b *testing.B) {
	etcd := testenv.StartEtcd(b)
	var n atomic.Int64
	ctx := context.Background()
	setParallel(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := etcd.Client.Grant(ctx, 60)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := etcd.Client.Put(ctx, fmt.Sprintf("/bench/%d", n.Add(1)), "x", clientv3.WithLease(l.ID)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRawKeepAliveOnce: one KeepAliveOnce per heartbeat (a stream per
// call), the baseline the registrar's shared stream must beat.
func BenchmarkRawKeepAliveOnce(b *testing.B) {
	etcd := testenv.StartEtcd(b)
	ctx := context.Background()
	const instances = 2000
	ls := make([]clientv3.LeaseID, instances)
	for i := range ls {
		l, err := etcd.Client.Grant(ctx, 3600)
		if err != nil {
			b.Fatal(err)
		}
		ls[i] = l.ID
	}
	var n atomic.Int64
	setParallel(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := etcd.Client.KeepAliveOnce(ctx, ls[n.Add(1)%instances]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRenewStream: the registrar's renewer alone (no HTTP): 64
// goroutines renewing 2,000 leases on the one shared stream, without the
// renewal cache. Compare with BenchmarkRawKeepAliveOnce.
func BenchmarkRenewStream(b *testing.B) {
	etcd := testenv.StartEtcd(b)
	reg := testenv.StartRegistrar(b, etcd.URL, func(c *registrar.Config) { c.RenewCacheFor = -1 })
	ctx := context.Background()
	const instances = 2000
	ls := make([]int64, instances)
	for i := range ls {
		l, err := etcd.Client.Grant(ctx, 3600)
		if err != nil {
			b.Fatal(err)
		}
		ls[i] = int64(l.ID)
	}
	var n atomic.Int64
	setParallel(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ttl, err := reg.Registrar.RenewForTest(ctx, ls[n.Add(1)%instances])
			if err != nil || ttl <= 0 {
				b.Fatalf("renew: %d %v", ttl, err)
			}
		}
	})
}
