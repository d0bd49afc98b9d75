package registrar_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestBlockingQueryWakesOnlyItsWatchers: with a blocking query on each of
// many services, a change to one service wakes the one query watching it,
// not all of them (the cost Consul's blocking queries are known for: every
// watcher wakes on any change, re-checks and goes back to sleep).
func TestBlockingQueryWakesOnlyItsWatchers(t *testing.T) {
	const services, changes = 300, 10
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxBlockingPerClient: 2 * services, RegisterRate: -1}))
	index := make([]string, services)
	for i := range services {
		register(t, reg.URL, fmt.Sprintf("svc%d", i), regBody("a"))
	}
	for i := range services {
		index[i] = do(t, "GET", fmt.Sprintf("%s/v1/services/svc%d?stale", reg.URL, i), nil).header.Get(api.IndexHeader)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	answered := make([]chan int, services)
	for i := range services {
		answered[i] = make(chan int, 1)
		wg.Go(func() {
			url := fmt.Sprintf("%s/v1/services/svc%d?wait=2m&index=%s", reg.URL, i, index[i])
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // cancelled at the end of the test
			}
			resp.Body.Close()
			answered[i] <- resp.StatusCode
		})
	}
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", services)
	before := metric(t, reg.URL, "netsel_registrar_blocking_wakeups_total")
	for i := range changes {
		register(t, reg.URL, fmt.Sprintf("svc%d", i), regBody("b"))
		if code := <-answered[i]; code != http.StatusOK {
			t.Fatalf("the watcher of svc%d answered %d", i, code)
		}
	}
	woken := metric(t, reg.URL, "netsel_registrar_blocking_wakeups_total") - before
	t.Logf("%d changes to %d of %d watched services: %v wake-ups", changes, changes, services, woken)
	if woken < changes || woken > 2*changes {
		t.Errorf("%d changes woke blocking queries %v times, want %d (one each)", changes, woken, changes)
	}
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", services-changes)
	for i := changes; i < services; i++ {
		select {
		case code := <-answered[i]:
			t.Fatalf("the watcher of svc%d, which did not change, answered %d", i, code)
		default:
		}
	}
}
