package checks_test

import (
	"context"
	"fmt"
	"net/http"
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

// TestReplan: a check changed by a new registration of the same id is
// re-planned at once (from a 1h interval to 1s), and a deregistered
// instance is no longer probed.
func TestReplan(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	a := testenv.StartRegistrar(t, etcd.URL, checked("reg-a", 10*time.Second, nil))
	ca := a.Registrar.Checker()
	port := listeners(t, 1)[0]
	reg := func(interval string) {
		t.Helper()
		body := fmt.Sprintf(`{"id":"i","address":"127.0.0.1","port":%d,"checks":[{"type":"tcp","interval":%q}]}`, port, interval)
		if err := post(a.URL+"/v1/services/w/instances", body); err != nil {
			t.Fatal(err)
		}
	}
	reg("1h")
	testenv.Eventually(t, 5*time.Second, func() bool { return ca.Stats().Owned == 1 }, "never owned the instance")
	reg("1s")
	changed := time.Now()
	testenv.Eventually(t, 5*time.Second, func() bool { at, _ := ca.LastProbe("w", "i"); return at.After(changed) },
		"the instance was not probed within 5s of its interval becoming 1s")
	testenv.Eventually(t, 5*time.Second, func() bool {
		at, _ := ca.LastProbe("w", "i")
		return at.After(changed.Add(time.Second))
	}, "the instance was not probed again a second later")

	req, _ := http.NewRequest("DELETE", a.URL+"/v1/services/w/instances/i", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testenv.Eventually(t, 5*time.Second, func() bool { _, ok := ca.LastProbe("w", "i"); return !ok && ca.Stats().Owned == 0 },
		"still checking a deregistered instance: %+v", ca.Stats())
	before := ca.Stats().Probes
	time.Sleep(2 * time.Second)                 // a span with nothing in it
	if p := ca.Stats().Probes - before; p > 1 { // one may have been in flight
		t.Errorf("%d probes in 2s after the only instance left", p)
	}
}
