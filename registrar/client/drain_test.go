package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// putReader writes the key of a reader serving revision rev, as a CoreDNS
// or a Caddy reports it: the test plays a reader.
func putReader(t *testing.T, c *clientv3.Client, id string, rev int64) {
	t.Helper()
	v, err := catalog.EncodeReader(&catalog.Reader{ID: id, Kind: catalog.ReaderProxy, Revision: rev, Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Grant(context.Background(), 60) // a live reader's key has a lease
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), ks.ReaderKey(id), string(v), clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
}

// TestMaintenanceDrainReaders: the client's maintenance, drain and readers
// calls.
func TestMaintenanceDrainReaders(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := c.Register(ctx, client.Registration{Service: "web", ID: id, Address: "127.0.0.1", Port: 8080}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Maintenance(ctx, "web", "a", "why"); err != nil {
		t.Fatal(err)
	}
	if err := c.Maintenance(ctx, "web", "nosuch", ""); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("maintenance of an unknown instance: %v, want ErrNotFound", err)
	}
	svc, err := c.ServiceByState(ctx, "web", "maintenance")
	if err != nil || len(svc.Instances) != 1 || svc.Instances[0].Reason != "why" {
		t.Fatalf("in maintenance: %+v %v", svc, err)
	}
	if svc, err := c.Service(ctx, "web"); err != nil || len(svc.Instances) != 1 || svc.Instances[0].ID != "b" {
		t.Fatalf("default listing: %+v %v", svc, err)
	}
	if err := c.EndMaintenance(ctx, "web", "a"); err != nil {
		t.Fatal(err)
	}
	putReader(t, etcd.Client, "p1", 1)
	list, err := c.Readers(ctx)
	if err != nil || len(list.Readers) != 1 || list.Readers[0].ID != "p1" {
		t.Fatalf("readers: %+v %v", list, err)
	}
	res, err := c.Drain(ctx, "web", "a", client.DrainOptions{Timeout: time.Second, Keep: true})
	if err != nil || res.Confirmed || len(res.Pending) != 1 || res.Deregistered {
		t.Fatalf("drain with a reader behind: %+v %v", res, err)
	}
	if svc, err := c.ServiceByState(ctx, "web", "draining"); err != nil || len(svc.Instances) != 1 {
		t.Fatalf("draining: %+v %v", svc, err)
	}
	if err := c.EndDrain(ctx, "web", "a"); err != nil {
		t.Fatal(err)
	}
	putReader(t, etcd.Client, "p1", 1<<40)
	res, err = c.Drain(ctx, "web", "a", client.DrainOptions{})
	if err != nil || !res.Confirmed || !res.Deregistered {
		t.Fatalf("drain: %+v %v", res, err)
	}
	if _, err := c.Drain(ctx, "web", "a", client.DrainOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("drain of a deregistered instance: %v, want ErrNotFound", err)
	}
}

// TestKeepaliveDrains: when its ctx ends, Keepalive drains the instance —
// it returns only once every reader serves the drain, or DrainTimeout
// passes — and the drain deregisters it.
func TestKeepaliveDrains(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	putReader(t, etcd.Client, "slow", 1)

	ctx, cancel := context.WithCancel(context.Background())
	registered := make(chan struct{})
	var (
		mu     sync.Mutex
		events []client.Event
	)
	done := make(chan error, 1)
	go func() {
		done <- c.Keepalive(ctx, client.Registration{Service: "web", ID: "k", Address: "127.0.0.1", Port: 8080},
			client.KeepaliveOptions{Interval: time.Second, DrainTimeout: 30 * time.Second, OnEvent: func(ev client.Event) {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
				if ev.Kind == client.EventRegistered {
					close(registered)
				}
			}})
	}()
	<-registered
	cancel()
	testenv.Eventually(t, 5*time.Second, func() bool {
		resp, err := etcd.Client.Get(context.Background(), ks.DrainKey("web", "k"))
		return err == nil && len(resp.Kvs) == 1
	}, "Keepalive did not drain the instance when its ctx ended")
	select {
	case err := <-done:
		t.Fatalf("Keepalive returned (%v) while a reader serves an older revision", err)
	default:
	}
	putReader(t, etcd.Client, "slow", 1<<40)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Keepalive did not return once the reader confirmed")
	}
	mu.Lock()
	defer mu.Unlock()
	var drained, deregistered bool
	for _, ev := range events {
		drained = drained || ev.Kind == client.EventDrained && ev.Drain != nil && ev.Drain.Confirmed
		deregistered = deregistered || ev.Kind == client.EventDeregistered && ev.Err == nil
	}
	if !drained || !deregistered {
		t.Errorf("events %+v, want a confirmed drain and a deregistration", events)
	}
	if resp, err := etcd.Client.Get(context.Background(), ks.InstanceKey("web", "k")); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("the instance is still registered (%v)", err)
	}
}
