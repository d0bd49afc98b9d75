package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

func newClient(t *testing.T, urls ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URLs: urls, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCalls(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ctx := context.Background()

	_, err := c.Register(ctx, client.Registration{Service: "web", Address: "127.0.0.1", Port: 0})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "port" {
		t.Fatalf("bad registration: %v, want a 400 APIError naming port", err)
	}
	a, err := c.Register(ctx, client.Registration{Service: "web", Address: "127.0.0.1", Port: 8080, TTL: 5 * time.Second})
	if err != nil || a.ID == "" || !a.VIP.IsValid() || a.Port != 8080 {
		t.Fatalf("register: %+v %v", a, err)
	}
	if err := c.Heartbeat(ctx, "web", a.ID); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := c.Heartbeat(ctx, "web", "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("heartbeat of an unknown instance: %v, want ErrNotFound", err)
	}
	svc, err := c.Service(ctx, "web")
	if err != nil || svc.VIP != a.VIP || len(svc.Instances) != 1 {
		t.Fatalf("service: %+v %v", svc, err)
	}
	if _, err := c.Service(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown service: %v, want ErrNotFound", err)
	}
	list, err := c.Services(ctx)
	if err != nil || len(list.Services) != 1 || list.Services[0].Name != "web" {
		t.Fatalf("services: %+v %v", list, err)
	}

	// Watch returns at once for index 0, then on the next change.
	_, idx, err := c.Watch(ctx, "web", 0, time.Second)
	if err != nil || idx == 0 {
		t.Fatalf("watch 0: %d %v", idx, err)
	}
	done := make(chan error, 1)
	var got int64
	go func() {
		var err error
		_, got, err = c.Watch(ctx, "web", idx, 10*time.Second)
		done <- err
	}()
	if err := c.Deregister(ctx, "web", a.ID); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if err := <-done; err != nil || got <= idx {
		t.Fatalf("watch after a change: index %d -> %d, %v", idx, got, err)
	}
	if err := c.Deregister(ctx, "web", a.ID); err != nil {
		t.Fatalf("deregistering a deregistered instance: %v, want nil", err)
	}
}

// events records Keepalive's events.
type events struct {
	mu  sync.Mutex
	all []client.Event
}

func (e *events) add(ev client.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) count(k client.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func (e *events) assignments() []*client.Assignment {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*client.Assignment
	for _, ev := range e.all {
		if ev.Kind == client.EventRegistered {
			out = append(out, ev.Assignment)
		}
	}
	return out
}

// startKeepalive runs Keepalive until the returned stop is called; stop
// returns Keepalive's error.
func startKeepalive(t *testing.T, c *client.Client, reg client.Registration) (*events, func() error) {
	t.Helper()
	ev := &events{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- c.Keepalive(ctx, reg, client.KeepaliveOptions{
			Interval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, OnEvent: ev.add,
		})
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Error("Keepalive did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	testenv.Eventually(t, 10*time.Second, func() bool { return ev.count(client.EventRegistered) > 0 }, "never registered")
	return ev, stop
}

func instanceExists(t *testing.T, etcd *testenv.Etcd, svc, id string) bool {
	resp, err := etcd.Client.Get(context.Background(), ks.InstanceKey(svc, id), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count == 1
}

// TestKeepaliveSurvivesRestart: the registrar goes away and comes back on
// the same address; the instance is never lost and keeps its id and VIP.
func TestKeepaliveSurvivesRestart(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ev, stop := startKeepalive(t, c, client.Registration{Service: "web", Address: "127.0.0.1", Port: 80, TTL: 5 * time.Second})
	first := ev.assignments()[0]

	reg.Stop()
	testenv.Eventually(t, 5*time.Second, func() bool { return ev.count(client.EventRetry) > 0 }, "no failed heartbeat while the registrar was down")
	if !instanceExists(t, etcd, "web", first.ID) {
		t.Fatal("instance lost while the registrar was down")
	}
	reg2 := testenv.StartRegistrarAt(t, etcd.URL, reg.Addr)
	testenv.Eventually(t, 10*time.Second, func() bool { return heartbeats(t, reg2.URL) >= 2 }, "no heartbeats reached the restarted registrar")
	if n := ev.count(client.EventRegistered); n != 1 {
		t.Errorf("registered %d times; the instance never expired, so once is enough", n)
	}
	for _, a := range ev.assignments() {
		if a.ID != first.ID || a.VIP != first.VIP {
			t.Errorf("assignment changed: %+v, first %+v", a, first)
		}
	}
	if !instanceExists(t, etcd, "web", first.ID) {
		t.Fatal("instance lost after the restart")
	}
	if err := stop(); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
	if instanceExists(t, etcd, "web", first.ID) {
		t.Error("instance still registered after Keepalive's context ended")
	}
}

// TestKeepaliveFailover: with two registrars, stopping one moves the
// heartbeats to the other.
func TestKeepaliveFailover(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	r1 := testenv.StartRegistrar(t, etcd.URL)
	r2 := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, r1.URL, r2.URL)
	ev, stop := startKeepalive(t, c, client.Registration{Service: "web", ID: "w1", Address: "127.0.0.1", Port: 80, TTL: 5 * time.Second})
	r1.Stop()
	testenv.Eventually(t, 10*time.Second, func() bool { return heartbeats(t, r2.URL) >= 2 }, "heartbeats never moved to the second registrar")
	if !instanceExists(t, etcd, "web", "w1") {
		t.Fatal("instance lost in the failover")
	}
	if n := ev.count(client.EventRegistered); n != 1 {
		t.Errorf("registered %d times; failover should not need a new registration", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
	if instanceExists(t, etcd, "web", "w1") {
		t.Error("instance still registered after Keepalive's context ended")
	}
}

// TestKeepaliveReregisters: when the instance disappears behind the
// client's back, the next heartbeat gets 404 and Keepalive registers again
// with the same id and VIP.
func TestKeepaliveReregisters(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ev, stop := startKeepalive(t, c, client.Registration{Service: "web", Address: "127.0.0.1", Port: 80, TTL: 5 * time.Second})
	first := ev.assignments()[0]
	if _, err := etcd.Client.Delete(context.Background(), ks.InstanceKey("web", first.ID)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return ev.count(client.EventRegistered) >= 2 }, "never registered again")
	if ev.count(client.EventExpired) < 1 {
		t.Error("no EventExpired before the new registration")
	}
	again := ev.assignments()[1]
	if again.ID != first.ID || again.VIP != first.VIP {
		t.Errorf("registered again as %+v, first %+v", again, first)
	}
	if !instanceExists(t, etcd, "web", first.ID) {
		t.Error("instance not back in etcd")
	}
	if err := stop(); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
	if instanceExists(t, etcd, "web", first.ID) {
		t.Error("instance still registered after Keepalive's context ended")
	}
	if ev.count(client.EventDeregistered) != 1 {
		t.Error("no EventDeregistered")
	}
}

// TestKeepaliveBadRegistration: an error retrying cannot fix ends Keepalive.
func TestKeepaliveBadRegistration(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Keepalive(ctx, client.Registration{Service: "Bad_Name", Address: "127.0.0.1", Port: 80}, client.KeepaliveOptions{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "name" {
		t.Fatalf("Keepalive: %v, want a 400 naming name", err)
	}
}

// heartbeats returns how many heartbeats the registrar at base has renewed.
func heartbeats(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n float64
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, series := range []string{`netsel_registrar_heartbeats_total{result="ok"} `, `netsel_registrar_heartbeats_total{result="cached"} `} {
			if v, ok := strings.CutPrefix(line, series); ok {
				f, _ := strconv.ParseFloat(v, 64)
				n += f
			}
		}
	}
	return n
}

// TestKeepaliveHonoursRetryAfter: while etcd is away the registrar answers
// heartbeats 503 with Retry-After: 1, and Keepalive waits that long between
// attempts instead of its own, shorter backoff.
func TestKeepaliveHonoursRetryAfter(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) { c.EtcdTimeout = 200 * time.Millisecond })
	c := newClient(t, reg.URL)

	var (
		mu      sync.Mutex
		retries []time.Time
	)
	ev := &events{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Keepalive(ctx, client.Registration{Service: "web", ID: "w1", Address: "127.0.0.1", Port: 80, TTL: 30 * time.Second},
			client.KeepaliveOptions{Interval: 300 * time.Millisecond, MaxBackoff: 3 * time.Second, OnEvent: func(e client.Event) {
				ev.add(e)
				if e.Kind == client.EventRetry {
					mu.Lock()
					retries = append(retries, time.Now())
					mu.Unlock()
				}
			}})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testenv.Eventually(t, 10*time.Second, func() bool { return ev.count(client.EventRegistered) > 0 }, "never registered")

	proxy.Cut()
	testenv.Eventually(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(retries) >= 3
	}, "fewer than 3 failed heartbeats with etcd cut")
	proxy.Restore()
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(retries); i++ {
		// Backoff alone would retry within 100-400 ms (+ the 200 ms etcd
		// timeout); Retry-After asks for a second.
		if gap := retries[i].Sub(retries[i-1]); gap < 950*time.Millisecond {
			t.Errorf("retry %d came %v after the one before; Retry-After asked for 1s", i, gap)
		}
	}
}

// TestTemporary: 507 and the 4xx other than 408 and 429 are permanent,
// so Keepalive stops on them; other 5xx, 408 and 429 are retried.
func TestTemporary(t *testing.T) {
	for status, want := range map[int]bool{
		400: false, 401: false, 403: false, 404: false, 409: false, 413: false, 501: false, 507: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if got := (&client.APIError{Status: status}).Temporary(); got != want {
			t.Errorf("Temporary() of %d = %v, want %v", status, got, want)
		}
	}
}
