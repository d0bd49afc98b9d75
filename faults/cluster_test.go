//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// clusterTTL is the TTL of the registrations in TestClusterLeaderLoss:
// orphan leases (granted, then their registration failed and the revoke
// could not reach etcd) are gone after it.
const clusterTTL = 10 * time.Second

// registered is the outcome of one registration.
type registered struct {
	service, id string
	a           *client.Assignment
	err         error
}

// TestClusterLeaderLoss kills, then stops, the leader of a three-member
// etcd cluster in the middle of a stream of registrations and heartbeats
// through two registrars whose clients know all three members. Afterwards every
// registration that was answered 200 is in etcd under the lease and VIP it
// was given, heartbeats never found one expired, and nothing is
// half-written: no instance without its service, no service without its
// VIP reservation, no VIP without its service, and (once the TTL has passed
// for leases whose revoke could not be sent) no lease holding no key.
func TestClusterLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member etcd cluster and waits out a lease TTL; skipped with -short")
	}
	cluster := testenv.StartEtcdCluster(t, 3)
	cli := cluster.Client()
	// Two registrars share the cluster and one VIP range, so they race for
	// VIPs while the leader changes. The range is a /20: room for every
	// service the writers make.
	vips := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 79, byte(16 * rand.IntN(16)), 0}), 20)
	regs := []*client.Client{
		newClient(t, startRegistrar(t, vips, cluster.Endpoints()...).URL),
		newClient(t, startRegistrar(t, vips, cluster.Endpoints()...).URL),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var (
		mu     sync.Mutex
		ok     []registered
		failed []registered
		lost   []string
	)
	heartbeat := func(r registered) {
		err := regs[rand.IntN(len(regs))].Heartbeat(ctx, r.service, r.id)
		if errors.Is(err, client.ErrNotFound) {
			mu.Lock()
			lost = append(lost, r.service+"/"+r.id)
			mu.Unlock()
		}
	}

	// Writers: each registers a new instance every tick — of a service of
	// its own (a new VIP) every third time, else of a service shared by all
	// — and heartbeats one of its earlier ones.
	stopWriters := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			var mine []registered
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					return
				case <-tick.C:
				}
				r := registered{service: fmt.Sprintf("shared-%d", i%2), id: fmt.Sprintf("w%d-%d", w, i)}
				if i%3 == 0 {
					r.service = fmt.Sprintf("own-%d-%d", w, i)
				}
				r.a, r.err = regs[(w+i)%len(regs)].Register(ctx, client.Registration{Service: r.service, ID: r.id,
					Address: "127.0.0.1", Port: 1000 + w, TTL: clusterTTL})
				mu.Lock()
				if r.err == nil {
					ok = append(ok, r)
					mine = append(mine, r)
				} else {
					failed = append(failed, r)
				}
				mu.Unlock()
				if len(mine) > 0 {
					heartbeat(mine[rand.IntN(len(mine))])
				}
			}
		})
	}
	// The heartbeater keeps every instance that got a 200 alive until the
	// checks are done.
	stopBeats := make(chan struct{})
	var beats sync.WaitGroup
	beats.Go(func() {
		for {
			mu.Lock()
			all := append([]registered(nil), ok...)
			mu.Unlock()
			for _, r := range all {
				select {
				case <-stopBeats:
					return
				default:
				}
				heartbeat(r)
			}
			if len(all) == 0 {
				select {
				case <-stopBeats:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	})
	defer func() {
		close(stopBeats)
		beats.Wait()
	}()

	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(ok), len(failed)
	}
	okAt := func() int { n, _ := count(); return n }
	testenv.Eventually(t, 20*time.Second, func() bool { return okAt() >= 40 }, "registrations never got going")
	// Two rounds: kill the leader (a crash); once registrations succeed
	// again, start it again (a follower now) and stop the new leader
	// (SIGTERM: it hands leadership over first).
	var down *testenv.EtcdMember
	for round := range 2 {
		leader, err := cluster.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if down != nil {
			down.Start()
		}
		okBefore, failedBefore := count()
		how := "killed"
		if round == 0 {
			leader.Kill()
		} else {
			how = "stopped"
			leader.Stop()
		}
		down = leader
		at := time.Now()
		t.Logf("round %d: %s leader %s after %d registrations (%d failed)", round, how, leader.Name, okBefore, failedBefore)
		newLeader, err := cluster.WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %s leads %v after the leader was %s", round, newLeader.Name, time.Since(at), how)
		resumed := okAt()
		testenv.Eventually(t, 30*time.Second, func() bool { return okAt() >= resumed+40 },
			"round %d: registrations never resumed after the leader was %s", round, how)
		_, failedAfter := count()
		t.Logf("round %d: registrations succeed again %v after; %d failed meanwhile", round, time.Since(at), failedAfter-failedBefore)
	}
	close(stopWriters)
	writers.Wait()
	nOK, nFailed := count()
	t.Logf("%d registrations answered 200, %d failed", nOK, nFailed)

	// Every 200 is there, whole, under the lease and VIP it was given.
	check := func(when string) {
		t.Helper()
		k, err := readKeyspace(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range k.whole() {
			t.Errorf("%s: half-written: %s", when, bad)
		}
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for _, r := range ok {
			in, found := k.instances[r.service][r.id]
			svc := k.services[r.service]
			switch {
			case !found:
				missing++
				if missing <= 10 {
					t.Errorf("%s: registration %s/%s answered 200 (lease %x) is gone", when, r.service, r.id, r.a.Lease)
				}
			case in.Lease != r.a.Lease:
				t.Errorf("%s: %s/%s on lease %x, answered with %x", when, r.service, r.id, in.Lease, r.a.Lease)
			case svc == nil || svc.VIP != r.a.VIP:
				t.Errorf("%s: %s/%s answered with VIP %v, service record %+v", when, r.service, r.id, r.a.VIP, svc)
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d registrations answered 200 are gone", when, missing, len(ok))
		}
	}
	check("after the leader change")

	// Leases granted for failed registrations are revoked, or expire.
	orphans, total, err := orphanLeases(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d leases, %d holding no key", total, len(orphans))
	testenv.Eventually(t, clusterTTL+10*time.Second, func() bool {
		orphans, _, err = orphanLeases(ctx, cli)
		return err == nil && len(orphans) == 0
	}, "leases holding no key outlived their TTL: %v", leaseList{&orphans})
	check("after the TTL of orphan leases")

	mu.Lock()
	defer mu.Unlock()
	if len(lost) > 0 {
		t.Errorf("heartbeats found %d instances answered 200 expired: %v", len(lost), lost)
	}
}

// leaseList formats the leases *p holds when printed, for messages built
// before the list is final.
type leaseList struct{ p *[]clientv3.LeaseID }

func (l leaseList) String() string { return fmt.Sprintf("%x", *l.p) }
