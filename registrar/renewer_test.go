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
