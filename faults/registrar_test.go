//go:build linux

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// Times of TestRegistrarKilled: the instances' TTL and heartbeat interval.
const (
	killTTL      = 10 * time.Second
	killInterval = 500 * time.Millisecond
)

// TestRegistrarKilled SIGKILLs a registrar process while three instances
// heartbeat through it. No instance is lost, and heartbeats resume — on the
// same registrar once it is started again, or at once on a second one the
// client knows — renewing the same leases: nothing registers again.
func TestRegistrarKilled(t *testing.T) {
	for _, kind := range etcdKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("restarted", func(t *testing.T) { testRegistrarKilled(t, kind, false) })
			t.Run("failover", func(t *testing.T) { testRegistrarKilled(t, kind, true) })
		})
	}
}

func testRegistrarKilled(t *testing.T, kind etcdKind, failover bool) {
	url, cli := kind.start(t)
	vips := vipRange()
	a := startRegistrarProc(t, url, "", vips)
	urls := []string{a.URL}
	if failover {
		urls = append(urls, startRegistrarProc(t, url, "", vips).URL)
	}
	c := newClient(t, urls...)
	var kepts []*kept
	for i := range 3 {
		kepts = append(kepts, keepalive(t, c, client.Registration{Service: "api", ID: fmt.Sprintf("api-%d", i),
			Address: "127.0.0.1", Port: 8000 + i, TTL: killTTL}, killInterval))
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, k := range kepts {
			if k.registered() == nil {
				return false
			}
		}
		return true
	}, "instances never registered")
	leases := map[string]int64{}
	for _, k := range kepts {
		leases[k.reg.ID] = k.registered().Lease
	}
	checkLeases := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e, _, err := catalog.LoadService(ctx, cli, ks, "api", nil)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if e == nil || e.Len() != len(leases) {
			t.Fatalf("%s: service api is %+v, want %d instances", when, e, len(leases))
		}
		for _, in := range e.Instances() {
			if in.Lease != leases[in.ID] {
				t.Errorf("%s: instance %s on lease %x, want %x (its first)", when, in.ID, in.Lease, leases[in.ID])
			}
		}
	}
	checkLeases("before the kill")

	a.kill()
	killed := time.Now()
	if failover {
		// The client moves to the second registrar within one heartbeat:
		// the leases are renewed past the kill and no heartbeat fails.
		renewedPast(t, cli, leases, killed)
	} else {
		// Nothing renews the leases now; wait until they have run down
		// (etcd reports whole seconds, truncated: TTL-2 after a second),
		// so that renewal afterwards shows heartbeats resumed.
		testenv.Eventually(t, killTTL, func() bool {
			for _, l := range leases {
				if leaseTTL(t, cli, l) > int64((killTTL-2*time.Second)/time.Second) {
					return false
				}
			}
			return true
		}, "leases still renewed with the registrar killed")
		checkLeases("with the registrar killed")
		for _, k := range kepts {
			if k.count(client.EventRetry) == 0 {
				t.Errorf("%s: no failed heartbeat reported with the registrar killed", k.reg.ID)
			}
		}
		startRegistrarProc(t, url, a.Addr, vips)
		t.Logf("registrar restarted %v after the kill", time.Since(killed))
		renewedPast(t, cli, leases, time.Now())
		testenv.Eventually(t, 5*time.Second, func() bool {
			for _, k := range kepts {
				if !k.quiet(3 * killInterval) {
					return false
				}
			}
			return true
		}, "Keepalive still retrying after the registrar came back")
	}
	checkLeases("after the kill")
	for _, k := range kepts {
		k.check(t)
		if failover && k.count(client.EventRetry) > 0 {
			t.Errorf("%s: %d failed heartbeats with a second registrar to fail over to", k.reg.ID, k.count(client.EventRetry))
		}
	}
}

// renewedPast waits until every lease has been renewed to (nearly) its full
// TTL at least 2s after since: heartbeats get through. etcd reports whole
// seconds, truncated: a lease not renewed for a second shows TTL-2.
func renewedPast(t *testing.T, cli *clientv3.Client, leases map[string]int64, since time.Time) {
	t.Helper()
	full := int64(killTTL / time.Second)
	testenv.Eventually(t, 10*time.Second, func() bool {
		if time.Since(since) < 2*time.Second {
			return false
		}
		for _, l := range leases {
			if leaseTTL(t, cli, l) < full-1 {
				return false
			}
		}
		return true
	}, "heartbeats did not renew the leases")
}
