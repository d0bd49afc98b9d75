package catalog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// readerKeys follows the readers' keys: every write and the last value.
type readerKeys struct {
	mu     sync.Mutex
	puts   int
	last   *catalog.Reader
	absent bool
}

func watchReaders(t *testing.T, c *clientv3.Client) *readerKeys {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rk := &readerKeys{}
	wch := c.Watch(ctx, ks.ReadersPrefix(), clientv3.WithPrefix())
	go func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				rk.mu.Lock()
				if ev.Type == clientv3.EventTypeDelete {
					rk.absent = true
				} else if r, err := catalog.DecodeReader(ev.Kv.Value); err == nil {
					rk.puts++
					rk.last, rk.absent = r, false
				}
				rk.mu.Unlock()
			}
		}
	}()
	return rk
}

func (rk *readerKeys) get() (puts int, last *catalog.Reader, absent bool) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	return rk.puts, rk.last, rk.absent
}

// TestReporter: a reader's key says what it serves, costs no write while
// nothing is draining, follows a drain promptly (revision and connections),
// and leaves with the reader.
func TestReporter(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	putInstance(t, c, "web", "a")
	ix := startIndex(t, c, nil)
	rk := watchReaders(t, c)

	var mu sync.Mutex
	conns := map[string]int{}
	rep := catalog.NewReporter(c, ix, catalog.ReporterOptions{
		Kind: catalog.ReaderProxy, Refresh: time.Hour,
		Connections: func() map[string]int {
			mu.Lock()
			defer mu.Unlock()
			out := make(map[string]int, len(conns))
			for k, n := range conns {
				out[k] = n
			}
			return out
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	testenv.Eventually(t, 5*time.Second, func() bool { n, _, _ := rk.get(); return n == 1 }, "the reader wrote no key")
	_, first, _ := rk.get()
	if first.ID != rep.ID() || first.Kind != catalog.ReaderProxy || first.Revision != ix.Snapshot().Revision() {
		t.Fatalf("first report %+v, index at %d", first, ix.Snapshot().Revision())
	}

	// Churn with no drain: the index follows, the key is not rewritten.
	for _, id := range []string{"b", "c", "d"} {
		putInstance(t, c, "web", id)
	}
	resp, err := c.Get(context.Background(), ks.InstanceKey("web", "d"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.WaitRevision(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	conns["web/a"] = 2
	mu.Unlock()
	if n, _, _ := rk.get(); n != 1 {
		t.Fatalf("%d writes while nothing drains, want 1 (the first)", n)
	}

	// A drain: the reader reports the drain's revision, then the
	// connections as they close.
	b, _ := catalog.EncodeDrain(&catalog.Drain{Since: time.Now()})
	put, err := c.Put(context.Background(), ks.DrainKey("web", "a"), string(b))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, func() bool {
		_, last, _ := rk.get()
		return last.Revision >= put.Header.Revision && last.Connections["web/a"] == 2
	}, "the reader did not report the drain's revision %d with its connections", put.Header.Revision)
	mu.Lock()
	delete(conns, "web/a")
	mu.Unlock()
	testenv.Eventually(t, 2*time.Second, func() bool {
		_, last, _ := rk.get()
		return len(last.Connections) == 0
	}, "the reader did not report its connections closed")

	cancel()
	<-done
	testenv.Eventually(t, 2*time.Second, func() bool { _, _, absent := rk.get(); return absent },
		"the reader's key outlived the reader")
}

// TestReporterFlood: a flood of changes while an instance drains costs at
// most one reader write per Prompt, and the last write still says the
// latest revision.
func TestReporterFlood(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	putInstance(t, c, "web", "a")
	b, _ := catalog.EncodeDrain(&catalog.Drain{Since: time.Now()})
	if _, err := c.Put(context.Background(), ks.DrainKey("web", "a"), string(b)); err != nil {
		t.Fatal(err)
	}
	ix := startIndex(t, c, nil)
	rk := watchReaders(t, c)
	const prompt = 100 * time.Millisecond
	rep := catalog.NewReporter(c, ix, catalog.ReporterOptions{Kind: catalog.ReaderDNS, Prompt: prompt, Refresh: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, 5*time.Second, func() bool { n, _, _ := rk.get(); return n == 1 }, "the reader wrote no key")

	start := time.Now()
	var last int64
	for i := range 300 {
		resp, err := c.Put(context.Background(), ks.InstanceKey("web", "b"), fmt.Sprintf(`{"id":"b","service":"web","address":"127.0.0.1","port":%d,"weight":1}`, 1000+i))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	testenv.Eventually(t, 2*time.Second, func() bool { _, r, _ := rk.get(); return r.Revision >= last },
		"the reader never reported the last revision %d", last)
	elapsed := time.Since(start)
	n, _, _ := rk.get()
	if most := 2 + int(elapsed/prompt); n-1 > most {
		t.Fatalf("%d reader writes in %v of changes, want at most %d (one per %v)", n-1, elapsed, most, prompt)
	}
	t.Logf("%d reader writes for 300 changes in %v", n-1, elapsed)
}

func TestBoundConnections(t *testing.T) {
	m := map[string]int{"zero": 0}
	for i := range catalog.MaxReportedConnections + 50 {
		m[fmt.Sprintf("s/%d", i)] = i + 1
	}
	got := catalog.BoundConnections(m)
	if len(got) != catalog.MaxReportedConnections {
		t.Fatalf("kept %d entries, want %d", len(got), catalog.MaxReportedConnections)
	}
	if _, ok := got["s/0"]; ok {
		t.Fatal("kept one of the least busy instances")
	}
	if got[fmt.Sprintf("s/%d", catalog.MaxReportedConnections+49)] == 0 {
		t.Fatal("dropped the busiest instance")
	}
	if catalog.BoundConnections(map[string]int{"a": 0}) != nil {
		t.Fatal("zero counts reported")
	}
}
