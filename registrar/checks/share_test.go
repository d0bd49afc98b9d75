package checks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// checked is the configuration of the registrars of these tests: a short
// membership TTL, and no registration rate limit.
func checked(id string, ttl time.Duration, cli *clientv3.Client) testenv.RegistrarOption {
	return func(c *registrar.Config) {
		c.Checks.MemberID = id
		c.Checks.MemberTTL = ttl
		c.Limits.RegisterRate, c.Limits.RegisterBurst = 1e6, 1e6
		if cli != nil {
			c.Client = cli
		}
	}
}

// listeners starts n TCP listeners on loopback that accept and close
// every connection, and returns their ports.
func listeners(t *testing.T, n int) []int {
	var ports []int
	for range n {
		addr := testenv.ServeTCP(t, func(c net.Conn) { c.Close() })
		ports = append(ports, addr.Port)
	}
	return ports
}

// registerAll registers n instances of services svc-0..svc-9 through the
// registrar at base, 16 at a time, each with check.
func registerAll(t *testing.T, base string, n int, ports []int, check api.Check) []string {
	var keys []string
	reqs := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for i := range reqs {
				body, _ := json.Marshal(api.RegisterRequest{
					ID: fmt.Sprintf("i-%d", i), Address: "127.0.0.1", Port: ports[i%len(ports)],
					TTL: api.Duration(time.Minute), Checks: []api.Check{check},
				})
				url := fmt.Sprintf("%s/v1/services/svc-%d/instances", base, i%10)
				// A loaded machine may make etcd slow: 503s are retried, as
				// clients do.
				var err error
				for range 5 {
					if err = post(url, string(body)); err == nil {
						break
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		reqs <- i
		keys = append(keys, fmt.Sprintf("svc-%d/i-%d", i%10, i))
	}
	close(reqs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return keys
}

// TestShareAndTakeOver: two registrars share 1,000 instances' checks
// evenly; when one dies without leaving (its etcd client is cut, so its
// membership lease is neither renewed nor revoked), the other checks every
// instance again within the membership TTL and one interval.
func TestShareAndTakeOver(t *testing.T) {
	const (
		n        = 1000
		ttl      = 2 * time.Second
		interval = time.Second
	)
	etcd := testenv.StartEtcd(t)
	cliB := testenv.NewClient(t, etcd.URL)
	a := testenv.StartRegistrar(t, etcd.URL, checked("reg-a", ttl, nil))
	b := testenv.StartRegistrar(t, etcd.URL, checked("reg-b", ttl, cliB))
	ca, cb := a.Registrar.Checker(), b.Registrar.Checker()
	testenv.Eventually(t, 10*time.Second, func() bool {
		return len(a.Registrar.Index().Snapshot().Members()) == 2 && len(b.Registrar.Index().Snapshot().Members()) == 2
	}, "the registrars never saw each other")

	keys := registerAll(t, a.URL, n, listeners(t, 4), api.Check{Type: "tcp", Interval: api.Duration(interval), Timeout: api.Duration(500 * time.Millisecond)})
	testenv.Eventually(t, 10*time.Second, func() bool {
		return ca.Stats().Owned+cb.Stats().Owned == n
	}, "the registrars never owned all %d instances between them: %+v %+v", n, ca.Stats(), cb.Stats())
	sa, sb := ca.Stats().Owned, cb.Stats().Owned
	t.Logf("shares: reg-a %d, reg-b %d", sa, sb)
	if min(sa, sb) < n/2*8/10 || max(sa, sb) > n/2*12/10 {
		t.Errorf("shares %d and %d are more than 20%% off even", sa, sb)
	}
	// Each instance is checked by exactly one of them.
	testenv.Eventually(t, 3*interval, func() bool {
		for _, k := range keys {
			svc, id := split(k)
			_, okA := ca.LastProbe(svc, id)
			_, okB := cb.LastProbe(svc, id)
			if okA == okB {
				return false
			}
		}
		return true
	}, "an instance is checked by both registrars or by neither")

	cliB.Close() // reg-b is gone: no renewal, no revoke
	killed := time.Now()
	// Slack beyond TTL + interval: etcd expires leases on a 500ms loop, then
	// the watch and the probe itself.
	deadline := ttl + interval + time.Second
	var late []string
	testenv.Eventually(t, deadline, func() bool {
		late = late[:0]
		for _, k := range keys {
			svc, id := split(k)
			if at, ok := ca.LastProbe(svc, id); !ok || !at.After(killed) {
				late = append(late, k)
			}
		}
		return len(late) == 0
	}, "reg-a did not check every instance again within %v of reg-b's death", deadline)
	t.Logf("every instance checked again %v after the kill; reg-a owns %d", time.Since(killed), ca.Stats().Owned)
	if ca.Stats().Owned != n {
		t.Errorf("reg-a owns %d, want %d", ca.Stats().Owned, n)
	}
	if st := ca.Stats(); st.Writes != 0 {
		t.Errorf("%d state writes while every instance passed", st.Writes)
	}
}

func split(k string) (svc, id string) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// healthWatch counts the writes to health keys.
type healthWatch struct {
	mu   sync.Mutex
	puts map[string]int
	dels map[string]int
}

func watchHealth(t *testing.T, cli *clientv3.Client) *healthWatch {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &healthWatch{puts: map[string]int{}, dels: map[string]int{}}
	wch := cli.Watch(ctx, ks.Prefix()+"health/", clientv3.WithPrefix())
	go func() {
		for resp := range wch {
			w.mu.Lock()
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					w.puts[string(ev.Kv.Key)]++
				} else {
					w.dels[string(ev.Kv.Key)]++
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *healthWatch) counts() (puts, dels int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.puts {
		puts += n
	}
	for _, n := range w.dels {
		dels += n
	}
	return puts, dels
}

func (w *healthWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.puts)
	clear(w.dels)
}

// post sends a registration body to url and wants a 200.
func post(url, body string) error {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, b)
	}
	return nil
}
