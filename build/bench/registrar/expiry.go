package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
)

// expiry is what one expiry probe saw of its instances.
type expiry struct {
	// late is the largest time from sending an instance's last heartbeat
	// to its key's disappearance from etcd: the bound to check.
	late time.Duration
	// early is the smallest time from the answer to an instance's last
	// heartbeat to its disappearance: it must not be much below the TTL.
	early time.Duration
}

// probeExpiry registers n instances of service svc with ttl through the
// registrar at base, heartbeats each of them three times a second apart
// (the last time twice at once, so the two share one renewal), calls
// afterLast once every last heartbeat is answered (nil: nothing; the
// "registrar died" probe stops the registrar there), and times each key's
// disappearance by polling etcd every 10 ms.
func probeExpiry(ctx context.Context, hc *http.Client, etcd *clientv3.Client, base, svc string, n int, ttl time.Duration, afterLast func()) (expiry, error) {
	instances := fmt.Sprintf("%s/v1/services/%s/instances", base, svc)
	for i := range n {
		body := fmt.Sprintf(`{"id":"e%d","address":"127.0.0.2","port":9000,"ttl":"%s"}`, i, ttl)
		if err := expect(ctx, hc, http.MethodPost, instances, body); err != nil {
			return expiry{}, fmt.Errorf("probe register: %w", err)
		}
	}
	sent := make([]time.Time, n)
	answered := make([]time.Time, n)
	for round := range 3 {
		if round > 0 {
			time.Sleep(time.Second)
		}
		var wg sync.WaitGroup
		var errs loadgen.FirstErr
		for i := range n {
			wg.Go(func() {
				t0 := time.Now()
				beats := 1
				if round == 2 {
					beats = 2
				}
				var bw sync.WaitGroup
				for range beats {
					bw.Go(func() {
						if err := expect(ctx, hc, http.MethodPut, fmt.Sprintf("%s/e%d/heartbeat", instances, i), ""); err != nil {
							errs.Set(err)
						}
					})
				}
				bw.Wait()
				sent[i], answered[i] = t0, time.Now()
			})
		}
		wg.Wait()
		if err := errs.Get(); err != nil {
			return expiry{}, fmt.Errorf("probe heartbeat: %w", err)
		}
	}
	if afterLast != nil {
		afterLast()
	}

	gone := make([]time.Time, n)
	left := n
	deadline := time.Now().Add(3 * ttl)
	for left > 0 {
		if time.Now().After(deadline) {
			return expiry{}, fmt.Errorf("probe %s: %d of %d instances still in etcd %v after their last heartbeat: %w", svc, left, n, 3*ttl, errTimeout)
		}
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := etcd.Get(gctx, ks.ServiceInstancesPrefix(svc), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		cancel()
		now := time.Now()
		if err != nil {
			return expiry{}, fmt.Errorf("probe poll: %w", err)
		}
		present := map[string]bool{}
		for _, kv := range resp.Kvs {
			present[string(kv.Key)] = true
		}
		for i := range n {
			if gone[i].IsZero() && !present[ks.InstanceKey(svc, fmt.Sprintf("e%d", i))] {
				gone[i] = now
				left--
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e := expiry{early: time.Hour}
	for i := range n {
		e.late = max(e.late, gone[i].Sub(sent[i]))
		e.early = min(e.early, gone[i].Sub(answered[i]))
	}
	return e, nil
}
