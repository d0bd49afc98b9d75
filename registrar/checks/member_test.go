package checks_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
)

// TestMembership: a registrar's membership key lives under a lease of its
// own; when etcd loses that lease the registrar puts the key back under a
// new one, and a clean stop revokes it at once rather than after its TTL.
func TestMembership(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	a := testenv.StartRegistrar(t, etcd.URL, checked("reg-a", 6*time.Second, nil))
	key := ks.MemberKey("reg-a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease := func() int64 {
		resp, err := etcd.Client.Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].Lease
	}
	first := lease()
	if first == 0 {
		t.Fatalf("no membership key %s under a lease", key)
	}
	if _, err := etcd.Client.Revoke(ctx, clientv3.LeaseID(first)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { l := lease(); return l != 0 && l != first },
		"the membership key was not put back after its lease was lost")

	a.Stop()
	if l := lease(); l != 0 {
		t.Errorf("the membership key outlived a clean stop (lease %x of a 6s TTL)", l)
	}
}
