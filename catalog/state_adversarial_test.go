package catalog_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// Adversarial tests of the keys beside instances (review of issue 11).
// Each fails on the code it was written against; see the report of branch
// h-review.

// advLeasedInstance puts instance svc/id under a new lease of its own and
// returns the lease.
func advLeasedInstance(t *testing.T, c *clientv3.Client, svc, id string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	b, err := catalog.EncodeInstance(&catalog.Instance{
		ID: id, Service: svc, Address: netip.MustParseAddr("127.0.0.1"), Port: 8080, Weight: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, ks.InstanceKey(svc, id), string(b), clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// TestAdversarialLeaselessSideKeys writes maintenance, drain and critical
// health keys with no lease beside a leased instance (a hand-written key,
// an old tool, or a hostile writer). The keys are documented to live
// under the instance's own lease, and a key on any other lease says
// nothing about the instance — but decorate treats lease 0 as matching
// every lease, so the instance leaves every answer, and since such keys
// never expire, so does every later registration of the same id.
// Expected: keys not on the instance's lease are ignored; the instance
// stays passing and served.
func TestAdversarialLeaselessSideKeys(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	advLeasedInstance(t, c, "web", "a")
	advLeasedInstance(t, c, "web", "b")
	ctx := context.Background()
	for key, v := range map[string]string{
		ks.MaintenanceKey("web", "a"): `{"reason":"forged","since":"2026-01-01T00:00:00Z"}`,
		ks.DrainKey("web", "a"):       `{"since":"2026-01-01T00:00:00Z"}`,
		ks.HealthKey("web", "b"):      `{"state":"critical","output":"forged","since":"2026-01-01T00:00:00Z"}`,
	} {
		if _, err := c.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	ix := startIndex(t, c, nil)
	e, ok := ix.Snapshot().Service("web")
	if !ok {
		t.Fatal("no service web")
	}
	for _, id := range []string{"a", "b"} {
		if in, _ := e.Instance(id); in.State() != catalog.StatePassing {
			t.Errorf("%s is %s from a key with no lease, want passing (only keys on its lease count)", id, in.State())
		}
	}
	if n := len(e.Serving()); n != 2 {
		t.Errorf("%d instances served, want both", n)
	}
}

// TestAdversarialOrphanDrainKeepsReadersPrompt writes a drain key for an
// instance that does not exist (a drain left by an instance long gone on
// a key with no lease, or one written on another live lease). Snapshot.
// Draining counts every drain key, matched to an instance or not, so every
// reader (CoreDNS, Caddy) stays in its prompt mode for ever: it polls every
// 50 ms and rewrites its reader key on every catalog change instead of at
// most every 10 s, on every host.
// Expected: only drain keys that mark a live instance (on its lease) count.
func TestAdversarialOrphanDrainKeepsReadersPrompt(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	lease := advLeasedInstance(t, c, "web", "a")
	ctx := context.Background()
	if _, err := c.Put(ctx, ks.DrainKey("web", "ghost"), `{"since":"2026-01-01T00:00:00Z"}`); err != nil {
		t.Fatal(err)
	}
	// On the live lease of another instance.
	if _, err := c.Put(ctx, ks.DrainKey("web", "ghost2"), `{"since":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(lease)); err != nil {
		t.Fatal(err)
	}
	ix := startIndex(t, c, nil)
	if ix.Snapshot().Draining() {
		t.Error("Draining() with no instance draining: drain keys of instances that do not exist keep every reader prompt")
	}
}

// TestAdversarialRelistKeepsStaleState: while a reader's watch is cut off,
// an instance is marked draining (and another put in maintenance) and the
// history is compacted, so the reader lists again. The re-list keeps the
// old Entry of every service whose service and instance keys did not
// change (svcState.sameAs compares only their revisions), so the reader
// goes on serving the instance as passing — while its reader key reports
// the re-list's revision, later than the drain's: the drain is confirmed
// by a reader that still sends the instance new traffic.
// Expected: after the re-list the states are the ones etcd holds.
func TestAdversarialRelistKeepsStaleState(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	c := testenv.NewClient(t, "http://"+proxy.Addr())
	putService(t, etcd.Client, "web", "127.77.0.1")
	la := advLeasedInstance(t, etcd.Client, "web", "a")
	lb := advLeasedInstance(t, etcd.Client, "web", "b")
	ix := startIndex(t, c, nil)

	proxy.Cut()
	ctx := context.Background()
	if _, err := etcd.Client.Put(ctx, ks.DrainKey("web", "a"), `{"since":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(la)); err != nil {
		t.Fatal(err)
	}
	resp, err := etcd.Client.Put(ctx, ks.MaintenanceKey("web", "b"), `{"reason":"r","since":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(lb))
	if err != nil {
		t.Fatal(err)
	}
	drainRev := resp.Header.Revision
	if _, err := etcd.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	testenv.Eventually(t, 10*time.Second, func() bool { return ix.Stats().Relists >= 1 && ix.Snapshot().Revision() >= drainRev },
		"the index did not list again after the compaction")
	state := func(id string) string {
		e, _ := ix.Snapshot().Service("web")
		in, ok := e.Instance(id)
		if !ok {
			return "<none>"
		}
		return in.State()
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && (state("a") != catalog.StateDraining || state("b") != catalog.StateMaintenance) {
		time.Sleep(50 * time.Millisecond)
	}
	if a, b := state("a"), state("b"); a != catalog.StateDraining || b != catalog.StateMaintenance {
		t.Errorf("after the re-list at revision %d (>= %d): a is %s, b is %s; want draining and maintenance (served: %d)",
			ix.Snapshot().Revision(), drainRev, a, b, len(advEntry(t, ix).Serving()))
	}
}

func advEntry(t *testing.T, ix *catalog.Index) *catalog.Entry {
	e, ok := ix.Snapshot().Service("web")
	if !ok {
		t.Fatal("no service web")
	}
	return e
}
