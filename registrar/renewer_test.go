package registrar_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// While etcd is away, heartbeats that give up must not pile up: a lease has
// at most one unanswered renewal, and it is answered once etcd is back.
func TestRenewerBoundedWhileEtcdAway(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) { c.RenewCacheFor = -1 })
	lease, err := etcd.Client.Grant(context.Background(), 30)
	if err != nil {
		t.Fatal(err)
	}
	r := reg.Registrar
	if ttl, err := r.RenewForTest(context.Background(), int64(lease.ID)); err != nil || ttl <= 0 {
		t.Fatalf("renew with etcd up: ttl %d, %v", ttl, err)
	}

	proxy.Cut()
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		r.RenewForTest(ctx, int64(lease.ID))
		cancel()
	}
	if pending, queued := r.RenewerBacklogForTest(); pending > 1 || queued > 1 {
		t.Fatalf("after 200 abandoned heartbeats of one lease: %d pending, %d queued; want at most 1 each", pending, queued)
	}

	proxy.Restore()
	testenv.Eventually(t, 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ttl, err := r.RenewForTest(ctx, int64(lease.ID))
		return err == nil && ttl > 0
	}, "renewals do not resume after etcd is back")
}

// When the keep-alive stream breaks and is opened again (etcd came back from
// an outage or a leader change), the renewer renews at once every lease it
// renewed within its TTL, without waiting for the next heartbeat.
func TestRenewerRenewsLiveLeasesOnReconnect(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) { c.RenewCacheFor = -1 })
	const ttl = 10
	lease, err := etcd.Client.Grant(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	r := reg.Registrar
	if got, err := r.RenewForTest(context.Background(), int64(lease.ID)); err != nil || got <= 0 {
		t.Fatalf("renew: ttl %d, %v", got, err)
	}
	remaining := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := etcd.Client.TimeToLive(ctx, lease.ID)
		if err != nil {
			return -1
		}
		return resp.TTL
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return remaining() <= ttl-3 }, "the lease's TTL never ran down")
	streams := metric(t, reg.URL, "netsel_registrar_lease_keepalive_streams_total")
	proxy.Cut()
	proxy.Restore()
	testenv.Eventually(t, 10*time.Second, func() bool {
		return metric(t, reg.URL, "netsel_registrar_lease_keepalive_streams_total") > streams
	}, "the keep-alive stream was not opened again")
	testenv.Eventually(t, 5*time.Second, func() bool { return remaining() >= ttl-1 },
		"the lease was not renewed when the keep-alive stream was opened again (TTL left %d)", remaining())
}
