package registrar_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

// TestInProcessEtcd runs a registrar on an embedded etcd's in-process
// client, as the runner does: without a LeaseClient it must refuse to start
// (the client has no gRPC connection to stream keep-alives on); with one,
// registrations and heartbeats work.
func TestInProcessEtcd(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	inproc := etcd.Server.InProcessClient()
	t.Cleanup(func() { inproc.Close() })
	ctx := context.Background()

	if _, err := registrar.New(ctx, registrar.Config{Client: inproc}); err == nil || !strings.Contains(err.Error(), "LeaseClient") {
		t.Fatalf("New with an in-process client and no LeaseClient: %v, want an error naming LeaseClient", err)
	}

	r, err := registrar.New(ctx, registrar.Config{Client: inproc, LeaseClient: etcd.Server.InProcessLeaseClient()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return r.Index().Snapshot().Synced() }, "index not synced")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reg, err := c.Register(cctx, client.Registration{Service: "web", ID: "a", Address: "127.0.0.1", Port: 8080, TTL: 5 * time.Second})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	lease := clientv3.LeaseID(reg.Lease)
	ttl := func() int64 {
		resp, err := etcd.Client.TimeToLive(cctx, lease)
		if err != nil {
			t.Fatalf("lease %x: %v", lease, err)
		}
		return resp.TTL
	}
	// Let the lease run down, then heartbeat: the renewal goes over the
	// in-process keep-alive stream and must put the TTL back up.
	testenv.Eventually(t, 10*time.Second, func() bool { return ttl() <= 3 }, "lease TTL never ran down")
	if err := c.Heartbeat(cctx, "web", "a"); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if got := ttl(); got < 4 {
		t.Fatalf("lease TTL %d s after a heartbeat, want it renewed to about 5 s", got)
	}
}
