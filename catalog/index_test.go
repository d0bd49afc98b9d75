package catalog_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

func putService(t *testing.T, c *clientv3.Client, name, vip string) {
	t.Helper()
	b, err := catalog.EncodeService(&catalog.Service{
		Name: name, VIP: netip.MustParseAddr(vip),
		Ports: []catalog.Port{{Name: catalog.DefaultPortName, Port: 80, Protocol: catalog.ProtocolTCP}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), ks.ServiceKey(name), string(b)); err != nil {
		t.Fatal(err)
	}
}

func putInstance(t *testing.T, c *clientv3.Client, svc, id string) {
	t.Helper()
	b, err := catalog.EncodeInstance(&catalog.Instance{
		ID: id, Service: svc, Address: netip.MustParseAddr("127.0.0.1"), Port: 8080, Weight: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), ks.InstanceKey(svc, id), string(b)); err != nil {
		t.Fatal(err)
	}
}

func startIndex(t *testing.T, c *clientv3.Client, logs *strings.Builder) *catalog.Index {
	t.Helper()
	opts := catalog.IndexOptions{PageSize: 3}
	if logs != nil {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(logs, f+"\n", a...) }
	} else {
		opts.Logf = t.Logf
	}
	ix := catalog.NewIndex(c, ks, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := ix.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return ix
}

func instanceIDs(ix *catalog.Index, svc string) string {
	e, ok := ix.Snapshot().Service(svc)
	if !ok {
		return "<none>"
	}
	var ids []string
	for _, in := range e.Instances() {
		ids = append(ids, in.ID)
	}
	return strings.Join(ids, ",")
}

func TestIndexListsAndWatches(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	// More keys than one page, to exercise paging at one revision.
	putService(t, c, "web", "127.77.0.1")
	putService(t, c, "db", "127.77.0.2")
	for _, id := range []string{"b", "a", "c", "d"} {
		putInstance(t, c, "web", id)
	}
	ix := startIndex(t, c, nil)

	s := ix.Snapshot()
	if !s.Synced() {
		t.Fatal("snapshot not synced after WaitSynced")
	}
	if got := instanceIDs(ix, "web"); got != "a,b,c,d" {
		t.Fatalf("web instances = %s, want a,b,c,d (sorted)", got)
	}
	if e, ok := s.ByVIP(netip.MustParseAddr("127.77.0.2")); !ok || e.Name != "db" {
		t.Fatalf("ByVIP(127.77.0.2) = %v, %v", e, ok)
	}
	db, _ := s.Service("db")

	putInstance(t, c, "web", "e")
	testenv.Eventually(t, time.Second, func() bool { return instanceIDs(ix, "web") == "a,b,c,d,e" },
		"new instance not in the index: %s", instanceIDs(ix, "web"))
	if _, err := c.Delete(context.Background(), ks.InstanceKey("web", "a")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, func() bool { return instanceIDs(ix, "web") == "b,c,d,e" },
		"deleted instance still in the index: %s", instanceIDs(ix, "web"))

	s2 := ix.Snapshot()
	if db2, _ := s2.Service("db"); db2 != db {
		t.Error("unchanged entry db got a new pointer")
	}
	if got := catalog.Changed(s, s2); len(got) != 1 || got[0] != "web" {
		t.Errorf("Changed = %v, want [web]", got)
	}
	select {
	case <-s.Stale():
	default:
		t.Error("old snapshot not marked stale")
	}
	if _, err := c.Delete(context.Background(), ks.ServiceKey("db")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Second, func() bool { _, ok := ix.Snapshot().Service("db"); return !ok },
		"deleted service still in the index")
	if _, ok := ix.Snapshot().ByVIP(netip.MustParseAddr("127.77.0.2")); ok {
		t.Error("VIP of a deleted service still resolves")
	}
	putService(t, c, "api", "127.77.0.3")
	testenv.Eventually(t, time.Second, func() bool {
		e, ok := ix.Snapshot().ByVIP(netip.MustParseAddr("127.77.0.3"))
		return ok && e.Name == "api"
	}, "VIP of a new service does not resolve")
	// An instance change keeps VIP lookups pointing at the new entry.
	putInstance(t, c, "web", "f")
	testenv.Eventually(t, time.Second, func() bool {
		e, ok := ix.Snapshot().ByVIP(netip.MustParseAddr("127.77.0.1"))
		return ok && e.Len() == 5
	}, "ByVIP serves a stale entry after an instance change")
	if svcs, insts := ix.Snapshot().Len(); svcs != 2 || insts != 5 {
		t.Errorf("Len = %d services, %d instances; want 2, 5", svcs, insts)
	}
}

func TestIndexSkipsBadValues(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	putInstance(t, c, "web", "good")
	ctx := context.Background()
	c.Put(ctx, ks.InstanceKey("web", "garbage"), "{not json")
	c.Put(ctx, ks.InstanceKey("web", "liar"), `{"id":"other","service":"web","address":"10.0.0.1","port":80}`)
	c.Put(ctx, ks.Prefix()+"services/Bad_Name", `{}`)

	var logs strings.Builder
	ix := startIndex(t, c, &logs)
	if got := instanceIDs(ix, "web"); got != "good" {
		t.Fatalf("instances = %s, want only good", got)
	}
	if n := ix.Stats().Skipped; n != 3 {
		t.Errorf("Skipped = %d, want 3", n)
	}
	// A good value overwritten by a bad one stops being served.
	c.Put(ctx, ks.InstanceKey("web", "good"), `{"id":"good"}`)
	testenv.Eventually(t, time.Second, func() bool { return instanceIDs(ix, "web") == "" },
		"undecodable value still served: %s", instanceIDs(ix, "web"))
	if !strings.Contains(logs.String(), "skipping "+ks.InstanceKey("web", "garbage")) {
		t.Errorf("no log line names the skipped key; logs:\n%s", logs.String())
	}
}

func TestIndexRecoversAfterCompaction(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	c := testenv.NewClient(t, "http://"+proxy.Addr())
	putService(t, etcd.Client, "web", "127.77.0.1")
	putInstance(t, etcd.Client, "web", "a")
	putInstance(t, etcd.Client, "web", "b")
	ix := startIndex(t, c, nil)

	// While the index is cut off, change the keyspace and compact away the
	// history it would resume from.
	proxy.Cut()
	ctx := context.Background()
	etcd.Client.Delete(ctx, ks.InstanceKey("web", "a"))
	putInstance(t, etcd.Client, "web", "c")
	resp, err := etcd.Client.Put(ctx, "/unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if got := instanceIDs(ix, "web"); got != "a,b" {
		t.Fatalf("while cut off the index serves %s, want the last good state a,b", got)
	}
	proxy.Restore()
	testenv.Eventually(t, 10*time.Second, func() bool { return instanceIDs(ix, "web") == "b,c" },
		"index did not converge after compaction: %s", instanceIDs(ix, "web"))
	if ix.Stats().Relists < 1 {
		t.Errorf("Relists = %d, want at least 1", ix.Stats().Relists)
	}
	// And it keeps watching afterwards.
	putInstance(t, etcd.Client, "web", "d")
	testenv.Eventually(t, time.Second, func() bool { return instanceIDs(ix, "web") == "b,c,d" },
		"index stopped watching after re-list: %s", instanceIDs(ix, "web"))
}

func TestLoadService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	putService(t, etcd.Client, "web", "127.77.0.1")
	putInstance(t, etcd.Client, "web", "a")
	putInstance(t, etcd.Client, "webx", "z") // a sibling prefix must not leak in
	e, rev, err := catalog.LoadService(context.Background(), etcd.Client, ks, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil || e.Service == nil || e.Len() != 1 || e.Instances()[0].ID != "a" || rev == 0 {
		t.Fatalf("LoadService = %+v, rev %d", e, rev)
	}
	e, _, err = catalog.LoadService(context.Background(), etcd.Client, ks, "nope", nil)
	if err != nil || e != nil {
		t.Fatalf("LoadService(nope) = %+v, %v; want nil, nil", e, err)
	}
}

// A burst of changes is folded into few snapshots; the last of them must
// still be published once the burst stops.
func TestIndexPublishesTheEndOfABurst(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	putService(t, etcd.Client, "web", "127.77.0.1")
	ix := startIndex(t, etcd.Client, nil)
	const n = 300
	errs := make(chan error, n)
	for g := 0; g < 30; g++ {
		go func(g int) {
			for i := g; i < n; i += 30 {
				b, _ := catalog.EncodeInstance(&catalog.Instance{ID: fmt.Sprintf("i%03d", i), Service: "web",
					Address: netip.MustParseAddr("127.0.0.1"), Port: 80, Weight: 1})
				_, err := etcd.Client.Put(context.Background(), ks.InstanceKey("web", fmt.Sprintf("i%03d", i)), string(b))
				errs <- err
			}
		}(g)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Second, func() bool {
		e, ok := ix.Snapshot().Service("web")
		return ok && e.Len() == n
	}, "index does not hold all %d instances of the burst", n)
	if s := ix.Stats(); s.Events != n+1 && s.Events != n {
		t.Errorf("Events = %d, want %d", s.Events, n)
	}
}
