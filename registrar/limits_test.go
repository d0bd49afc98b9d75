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
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

func limits(l registrar.Limits) testenv.RegistrarOption {
	return func(c *registrar.Config) { c.Limits = l }
}

func regBody(id string) api.RegisterRequest {
	return api.RegisterRequest{ID: id, Address: "127.0.0.1", Port: 8080}
}

// wantRefused checks r is status with a JSON error naming field.
func wantRefused(t *testing.T, r *response, status int, field string) api.Error {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	e := r.apiError(t)
	if e.Field != field || e.Error == "" {
		t.Fatalf("error %+v, want field %q and a message", e, field)
	}
	return e
}

// TestMaxServicesRefusesNewServicesOnly: past the limit a new service is
// 507 naming "name"; existing services keep registering instances.
func TestMaxServicesRefusesNewServicesOnly(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxServices: 3}))
	for i := range 3 {
		register(t, reg.URL, fmt.Sprintf("svc%d", i), regBody("a"))
	}
	r := do(t, "POST", reg.URL+"/v1/services/svc3/instances", regBody("a"))
	e := wantRefused(t, r, http.StatusInsufficientStorage, "name")
	if !strings.Contains(e.Error, "retrying will not help") || r.header.Get("Retry-After") != "" {
		t.Errorf("507 %q with Retry-After %q; want it to say retrying will not help, and no Retry-After", e.Error, r.header.Get("Retry-After"))
	}
	register(t, reg.URL, "svc1", regBody("b"))
	register(t, reg.URL, "svc1", regBody("a"))
}

// TestMaxInstancesPerService: a new id past the limit is 507 naming "id";
// the ids already there re-register.
func TestMaxInstancesPerService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxInstancesPerService: 3}))
	for i := range 3 {
		register(t, reg.URL, "web", regBody(fmt.Sprintf("i%d", i)))
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		e, ok := reg.Registrar.Index().Snapshot().Service("web")
		return ok && e.Len() == 3
	}, "index holds 3 instances")
	wantRefused(t, do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("i3")), http.StatusInsufficientStorage, "id")
	register(t, reg.URL, "web", regBody("i1"))
	register(t, reg.URL, "other", regBody("i3"))
}

// TestMaxInstancesPerToken: one token cannot add instances past its limit;
// another token can, and the first re-registers what it holds.
func TestMaxInstancesPerToken(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxInstancesPerToken: 2}), func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, "token-one-0123456789 actions=register name=one\ntoken-two-0123456789 actions=register name=two\n")
	})
	one, two := bearer("token-one-0123456789"), bearer("token-two-0123456789")
	for _, id := range []string{"a", "b"} {
		if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody(id), one...); r.status != 200 {
			t.Fatalf("register %s: %d %s", id, r.status, r.body)
		}
	}
	wantRefused(t, do(t, "POST", reg.URL+"/v1/services/api/instances", regBody("c"), one...), http.StatusInsufficientStorage, "Authorization")
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("a"), one...); r.status != 200 {
		t.Fatalf("re-register a: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("c"), two...); r.status != 200 {
		t.Fatalf("other token: %d %s", r.status, r.body)
	}
}

// TestInstanceDataBytes: tags and meta within their per-item limits but
// over 8 KiB together are refused; under it they pass.
func TestInstanceDataBytes(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	big := regBody("a")
	big.Meta = map[string]string{}
	for i := range 10 {
		big.Meta[fmt.Sprintf("k%d", i)] = strings.Repeat("x", 1000)
	}
	wantRefused(t, do(t, "POST", reg.URL+"/v1/services/web/instances", big), http.StatusBadRequest, "meta")
	tags := regBody("a")
	for range 40 {
		tags.Tags = append(tags.Tags, strings.Repeat("t", 250))
	}
	wantRefused(t, do(t, "POST", reg.URL+"/v1/services/web/instances", tags), http.StatusBadRequest, "tags")
	delete(big.Meta, "k0")
	delete(big.Meta, "k1")
	register(t, reg.URL, "web", big)
}

// TestRegisterRateLimit: past its burst a client is answered 429 with
// Retry-After; other clients (tokens) are not.
func TestRegisterRateLimit(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{RegisterRate: 0.5, RegisterBurst: 3}), func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, "token-one-0123456789 actions=register\ntoken-two-0123456789 actions=register\n")
	})
	one := bearer("token-one-0123456789")
	for i := range 3 {
		if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody(fmt.Sprint("i", i)), one...); r.status != 200 {
			t.Fatalf("register %d: %d %s", i, r.status, r.body)
		}
	}
	r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("i3"), one...)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("4th registration: %d %s, want 429", r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 3 {
		t.Errorf("Retry-After %q, want 1-3 seconds", r.header.Get("Retry-After"))
	}
	if e := r.apiError(t); e.Error == "" {
		t.Errorf("429 without a message")
	}
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("j"), bearer("token-two-0123456789")...); r.status != 200 {
		t.Fatalf("another token: %d %s", r.status, r.body)
	}
}

// waitMetric waits until /metrics of base has the line name value.
func waitMetric(t *testing.T, base, name string, value float64) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool { return metric(t, base, name) == value },
		"metric %s = %v", name, value)
}

// blockingQuery starts a blocking list query of tok in the background; it
// reports its status on the returned channel.
func blockingQuery(ctx context.Context, t *testing.T, base, path, tok string) <-chan int {
	t.Helper()
	out := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- 0
			return
		}
		resp.Body.Close()
		out <- resp.StatusCode
	}()
	return out
}

// TestBlockingQueryCaps: blocking queries past the per-client or the total
// bound are answered 429 with Retry-After at once, and the ones waiting
// keep waiting.
func TestBlockingQueryCaps(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, limits(registrar.Limits{MaxBlockingQueries: 3, MaxBlockingPerClient: 2}), func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, "token-one-0123456789 actions=read\ntoken-two-0123456789 actions=read\nwriter-token-0123456789 actions=register\n")
	})
	writer := bearer("writer-token-0123456789")
	if r := do(t, "POST", reg.URL+"/v1/services/web/instances", regBody("a"), writer...); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	idx := do(t, "GET", reg.URL+"/v1/services", nil).header.Get(api.IndexHeader)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	list := "/v1/services?wait=1m&index=" + idx
	var waiting []<-chan int
	for range 2 {
		waiting = append(waiting, blockingQuery(ctx, t, reg.URL, list, "token-one-0123456789"))
	}
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", 2)
	r := do(t, "GET", reg.URL+"/v1/services/web?wait=1m&index=999999", nil, bearer("token-one-0123456789")...)
	wantRefused(t, r, http.StatusTooManyRequests, "index")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	waiting = append(waiting, blockingQuery(ctx, t, reg.URL, list, "token-two-0123456789"))
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", 3)
	wantRefused(t, do(t, "GET", reg.URL+list, nil, bearer("token-two-0123456789")...), http.StatusTooManyRequests, "index")
	// A non-blocking read is not bounded by them.
	if r := do(t, "GET", reg.URL+"/v1/services", nil); r.status != 200 {
		t.Fatalf("plain list: %d", r.status)
	}
	if r := do(t, "POST", reg.URL+"/v1/services/api/instances", regBody("a"), writer...); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	for _, w := range waiting {
		if s := <-w; s != 200 {
			t.Errorf("a waiting query answered %d, want 200", s)
		}
	}
}

// TestListAnswerSharedByWaiters: many blocking list queries woken by one
// change are answered from one encoding of the list.
func TestListAnswerSharedByWaiters(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	for i := range 20 {
		register(t, reg.URL, fmt.Sprintf("svc%d", i), regBody("a"))
	}
	idx := do(t, "GET", reg.URL+"/v1/services", nil).header.Get(api.IndexHeader)
	const waiters = 60
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		bodies = map[string]int{}
	)
	for range waiters {
		wg.Go(func() {
			r := do(t, "GET", reg.URL+"/v1/services?wait=30s&index="+idx, nil)
			mu.Lock()
			defer mu.Unlock()
			bodies[string(r.body)]++
		})
	}
	waitMetric(t, reg.URL, "netsel_registrar_blocking_queries", waiters)
	before := metric(t, reg.URL, "netsel_registrar_service_list_builds_total")
	register(t, reg.URL, "new", regBody("a"))
	wg.Wait()
	builds := metric(t, reg.URL, "netsel_registrar_service_list_builds_total") - before
	if builds < 1 || builds > 3 {
		t.Errorf("%d waiters took %v list builds (before: %v), want 1-3", waiters, builds, before)
	}
	if len(bodies) > 3 {
		t.Errorf("%d waiters got %d different answers", waiters, len(bodies))
	}
}

// TestVIPRangeExhausted: a /29 holds six VIPs, never its network or
// broadcast address; the seventh service is 507 naming "vip" without
// Retry-After, and the client library stops rather than retry.
func TestVIPRangeExhausted(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	cidr := netip.MustParsePrefix("127.78.9.0/29")
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.VIPCIDR = cidr })
	for i := range 6 {
		a := register(t, reg.URL, fmt.Sprintf("svc%d", i), regBody("a"))
		vip := a.VIP
		if !cidr.Contains(vip) || vip == cidr.Addr() || vip == netip.MustParseAddr("127.78.9.7") {
			t.Fatalf("service %d got VIP %s: the network or broadcast address, or outside %s", i, vip, cidr)
		}
	}
	r := do(t, "POST", reg.URL+"/v1/services/svc6/instances", regBody("a"))
	e := wantRefused(t, r, http.StatusInsufficientStorage, "vip")
	if r.header.Get("Retry-After") != "" || !strings.Contains(e.Error, "retrying will not help") {
		t.Errorf("507 %q with Retry-After %q", e.Error, r.header.Get("Retry-After"))
	}

	c, err := client.New(client.Config{URLs: []string{reg.URL, reg.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = c.Keepalive(ctx, client.Registration{Service: "svc7", Address: "127.0.0.1", Port: 8080}, client.KeepaliveOptions{Interval: time.Second})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Keepalive on an exhausted range: %v after %v; want it to stop with the 507", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "507") {
		t.Errorf("Keepalive error %v, want the 507", err)
	}
}
