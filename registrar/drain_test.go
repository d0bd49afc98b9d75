package registrar_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// putReader writes reader key r under lease (0: none, which no live
// reader's key has), as a CoreDNS or a Caddy reports what it serves: a test
// playing a reader, slow or stopped.
func putReader(t *testing.T, c *clientv3.Client, r catalog.Reader, lease clientv3.LeaseID) {
	t.Helper()
	if r.Updated.IsZero() {
		r.Updated = time.Now()
	}
	v, err := catalog.EncodeReader(&r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, ks.ReaderKey(r.ID), string(v), clientv3.WithLease(lease)); err != nil {
		t.Fatal(err)
	}
}

// grantLease grants a lease of ttl that nothing keeps alive.
func grantLease(t *testing.T, c *clientv3.Client, ttl time.Duration) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// modRevision returns the revision that last wrote key, 0 when it is absent.
func modRevision(t *testing.T, c *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].ModRevision
}

// startDrain sends the drain of web/a with query q and returns the channel
// its answer comes on.
func startDrain(t *testing.T, base, q string) <-chan *response {
	ch := make(chan *response, 1)
	go func() { ch <- do(t, "POST", base+"/v1/services/web/instances/a/drain"+q, nil) }()
	return ch
}

// drainAnswer waits for the drain's answer and decodes it.
func drainAnswer(t *testing.T, ch <-chan *response, within time.Duration) api.DrainResponse {
	t.Helper()
	select {
	case r := <-ch:
		if r.status != http.StatusOK {
			t.Fatalf("drain: %d %s", r.status, r.body)
		}
		var out api.DrainResponse
		r.decode(t, &out)
		return out
	case <-time.After(within):
		t.Fatalf("drain did not answer within %s", within)
	}
	return api.DrainResponse{}
}

// notAnswered fails the test when the drain has answered.
func notAnswered(t *testing.T, ch <-chan *response, why string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("drain answered %d %s while %s", r.status, r.body, why)
	default:
	}
}

// TestDrainWaitsForReaders: a drain answers only once every live reader
// serves the revision that marked the instance draining; with
// wait=connections only once none reports a connection to it; then it
// deregisters the instance.
func TestDrainWaitsForReaders(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
	fast := catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Host: "h1", Revision: 1 << 40}
	slow := catalog.Reader{ID: "proxy-1", Kind: catalog.ReaderProxy, Host: "h2", Revision: 1,
		Connections: map[string]int{"web/a": 2, "web/b": 1}}
	putReader(t, etcd.Client, fast, grantLease(t, etcd.Client, time.Minute))
	putReader(t, etcd.Client, slow, grantLease(t, etcd.Client, time.Minute))

	ch := startDrain(t, reg.URL, "?timeout=30s&wait=connections")
	var rev int64
	testenv.Eventually(t, 5*time.Second, func() bool {
		rev = modRevision(t, etcd.Client, ks.DrainKey("web", "a"))
		return rev > 0
	}, "the drain did not mark the instance")
	// The registrar lists a draining instance under ?state=any only.
	if all := instances(t, reg.URL, "web", "?state=any"); all["a"].State != catalog.StateDraining {
		t.Errorf("while draining: %+v, want a draining", all["a"])
	}
	// A change the watch sees, with the reader still behind.
	slow.Revision = rev - 1
	putReader(t, etcd.Client, slow, grantLease(t, etcd.Client, time.Minute))
	testenv.Eventually(t, 5*time.Second, func() bool {
		var l api.ReaderList
		do(t, "GET", reg.URL+"/v1/readers", nil).decode(t, &l)
		return len(l.Readers) == 2 && l.Readers[1].Revision == rev-1
	}, "GET /v1/readers does not show the slow reader's report")
	notAnswered(t, ch, "a reader serves an older revision")

	// At the revision, with connections to other instances only.
	slow.Revision = rev
	slow.Connections = map[string]int{"web/b": 1}
	putReader(t, etcd.Client, slow, grantLease(t, etcd.Client, time.Minute))
	out := drainAnswer(t, ch, 10*time.Second)
	if !out.Confirmed || out.Ended != "" || len(out.Pending) != 0 || out.Readers != 2 || !out.Deregistered || out.Revision != rev {
		t.Errorf("drain: %+v, want confirmed by both readers at revision %d and deregistered", out, rev)
	}
	if _, ok := instances(t, reg.URL, "web", "?state=any")["a"]; ok {
		t.Error("a is still registered after its drain")
	}
	if n := modRevision(t, etcd.Client, ks.DrainKey("web", "a")); n != 0 {
		t.Error("the drain key outlived the instance")
	}
}

// TestDrainWaitsForConnections: with wait=connections a reader that serves
// the drain's revision but reports connections to the instance holds the
// drain until they close (or the timeout); without, it does not.
func TestDrainWaitsForConnections(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	busy := catalog.Reader{ID: "proxy-1", Kind: catalog.ReaderProxy, Revision: 1 << 40, Connections: map[string]int{"web/a": 1}}
	putReader(t, etcd.Client, busy, grantLease(t, etcd.Client, time.Minute))
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=1s&wait=connections&deregister=false"), 10*time.Second)
	if out.Confirmed || out.Ended != "timeout" || len(out.Pending) != 1 || out.Pending[0].Connections["web/a"] != 1 {
		t.Fatalf("drain with a connection open: %+v, want timed out on proxy-1", out)
	}
	out = drainAnswer(t, startDrain(t, reg.URL, "?timeout=10s&deregister=false"), 10*time.Second)
	if !out.Confirmed || out.Waited.Std() > 5*time.Second {
		t.Fatalf("drain without wait=connections: %+v, want confirmed at once", out)
	}
	ch := startDrain(t, reg.URL, "?timeout=30s&wait=connections")
	busy.Connections = map[string]int{"web/a": 1, "web/b": 4}
	putReader(t, etcd.Client, busy, grantLease(t, etcd.Client, time.Minute))
	notAnswered(t, ch, "a connection is open")
	busy.Connections = map[string]int{"web/a": 0, "web/b": 4}
	putReader(t, etcd.Client, busy, grantLease(t, etcd.Client, time.Minute))
	if out := drainAnswer(t, ch, 10*time.Second); !out.Confirmed || !out.Deregistered {
		t.Errorf("drain once the connection closed: %+v, want confirmed", out)
	}
}

// TestDrainTimeout: a reader that never catches up makes the drain answer
// at its timeout, naming that reader; the instance is deregistered all the
// same, or kept, draining, with deregister=false. A drain may wait longer
// than the registrar's request and write timeouts.
func TestDrainTimeout(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.RequestTimeout, c.EtcdTimeout = time.Second, time.Second
		c.ReadTimeout, c.WriteTimeout = time.Second, 2*time.Second
	})
	stuck := catalog.Reader{ID: "proxy-7", Kind: catalog.ReaderProxy, Host: "h7", Revision: 1, Connections: map[string]int{"web/a": 3}}
	putReader(t, etcd.Client, stuck, grantLease(t, etcd.Client, time.Minute))
	putReader(t, etcd.Client, catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Revision: 1 << 40}, grantLease(t, etcd.Client, time.Minute))
	for _, keep := range []bool{false, true} {
		register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
		q, timeout := "?timeout=3s", 3*time.Second
		if keep {
			q, timeout = "?timeout=1s&deregister=false", time.Second
		}
		start := time.Now()
		out := drainAnswer(t, startDrain(t, reg.URL, q), 10*time.Second)
		took := time.Since(start)
		if out.Confirmed || out.Ended != "timeout" || out.Readers != 2 || len(out.Pending) != 1 || out.Deregistered == keep {
			t.Fatalf("keep=%v: %+v, want timed out on one of two readers", keep, out)
		}
		p := out.Pending[0]
		if p.ID != stuck.ID || p.Kind != stuck.Kind || p.Host != stuck.Host || p.Revision != 1 || p.Connections["web/a"] != 3 {
			t.Errorf("pending %+v, want %+v", p, stuck)
		}
		if took < timeout || out.Waited.Std() < timeout {
			t.Errorf("answered after %s (waited %s), before the timeout", took, out.Waited.Std())
		}
		state := instances(t, reg.URL, "web", "?state=any")["a"].State
		if keep && state != catalog.StateDraining || !keep && state != "" {
			t.Errorf("keep=%v: a is %q after the drain", keep, state)
		}
	}
	if m := string(do(t, "GET", reg.URL+"/metrics", nil).body); !strings.Contains(m, `netsel_registrar_drains_total{result="timeout"} 2`) ||
		!strings.Contains(m, "netsel_registrar_drain_wait_seconds_count 2") {
		t.Errorf("metrics do not count two timed-out drains:\n%s", m)
	}
}

// TestDrainReaderStops: a reader whose key expires (it stopped: nothing
// renews its lease) leaves the wait, and the drain completes without its
// confirmation, before the timeout.
func TestDrainReaderStops(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	putReader(t, etcd.Client, catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Revision: 1 << 40}, grantLease(t, etcd.Client, time.Minute))
	putReader(t, etcd.Client, catalog.Reader{ID: "gone", Kind: catalog.ReaderProxy, Revision: 1}, grantLease(t, etcd.Client, 3*time.Second))
	start := time.Now()
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=30s"), 20*time.Second)
	if !out.Confirmed || out.Readers != 1 || !out.Deregistered {
		t.Errorf("drain: %+v, want confirmed by the one reader left", out)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("took %s: the stopped reader was waited for", time.Since(start))
	}
}

// TestDrainReaderRevoked: a reader that stops cleanly revokes its lease,
// its key goes at once, and a drain waiting for it completes.
func TestDrainReaderRevoked(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	lease := grantLease(t, etcd.Client, time.Minute)
	putReader(t, etcd.Client, catalog.Reader{ID: "stopping", Kind: catalog.ReaderDNS, Revision: 1}, lease)
	ch := startDrain(t, reg.URL, "?timeout=30s")
	testenv.Eventually(t, 5*time.Second, func() bool { return modRevision(t, etcd.Client, ks.DrainKey("web", "a")) > 0 },
		"the drain did not mark the instance")
	notAnswered(t, ch, "the reader is behind")
	if _, err := etcd.Client.Revoke(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	if out := drainAnswer(t, ch, 5*time.Second); !out.Confirmed || out.Readers != 0 || !out.Deregistered {
		t.Errorf("drain: %+v, want confirmed with no reader left", out)
	}
}

// TestDrainShutdown: a drain ends early, answered, when the registrar
// shuts down; it holds a blocking-query slot while it waits.
func TestDrainShutdown(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.Limits.MaxBlockingPerClient = 1 })
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	putReader(t, etcd.Client, catalog.Reader{ID: "slow", Kind: catalog.ReaderProxy, Revision: 1}, grantLease(t, etcd.Client, time.Minute))
	ch := startDrain(t, reg.URL, "?timeout=5m")
	testenv.Eventually(t, 5*time.Second, func() bool { return modRevision(t, etcd.Client, ks.DrainKey("web", "a")) > 0 },
		"the drain did not mark the instance")
	if r := do(t, "GET", reg.URL+"/v1/services/web?index=1000000", nil); r.status != http.StatusTooManyRequests {
		t.Errorf("a blocking query beside a drain, one slot per client: %d %s, want 429", r.status, r.body)
	}
	start := time.Now()
	reg.Stop()
	out := drainAnswer(t, ch, 15*time.Second)
	if out.Confirmed || out.Ended != "shutdown" || time.Since(start) > 10*time.Second {
		t.Errorf("drain at shutdown: %+v after %s, want ended by the shutdown", out, time.Since(start))
	}
}

// TestDrainRealReaderDies: readers that report through catalog.Reporter —
// the code CoreDNS and Caddy run — confirm a drain; when one of them is
// cut off from etcd for good (its host died: nothing revokes its lease),
// a drain completes once its key expires, before the drain's timeout.
func TestDrainRealReaderDies(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 80})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lw := testenv.LogWriter(t)
	logf := func(format string, args ...any) { fmt.Fprintf(lw, format, args...) }
	report := func(endpoint, id string) {
		c := testenv.NewClient(t, endpoint)
		ix := catalog.NewIndex(c, ks, catalog.IndexOptions{Logf: logf})
		go ix.Run(ctx)
		go catalog.NewReporter(c, ix, catalog.ReporterOptions{Kind: catalog.ReaderProxy, ID: id, TTL: 3 * time.Second}).Run(ctx)
	}
	report(etcd.URL, "alive")
	cut := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	report("http://"+cut.Addr(), "dies")
	testenv.Eventually(t, 10*time.Second, func() bool {
		var l api.ReaderList
		do(t, "GET", reg.URL+"/v1/readers", nil).decode(t, &l)
		return len(l.Readers) == 2
	}, "the two readers do not report")
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=10s&deregister=false"), 15*time.Second)
	if !out.Confirmed || out.Readers != 2 {
		t.Fatalf("drain with two live readers: %+v, want confirmed by both", out)
	}
	cut.Cut()
	start := time.Now()
	r := do(t, "POST", reg.URL+"/v1/services/web/instances/b/drain?timeout=20s", nil)
	var res api.DrainResponse
	r.decode(t, &res)
	if r.status != http.StatusOK || !res.Confirmed || res.Readers != 1 || time.Since(start) > 15*time.Second {
		t.Errorf("drain with a reader cut off: %d %+v after %s, want confirmed by the one left once the other's key expired", r.status, res, time.Since(start))
	}
	t.Logf("confirmed after %s", time.Since(start))
}

// TestDrainWaitsOutDNSAnswers: a DNS reader that serves the drain at once
// still gave out answers naming the instance just before, which clients
// may act on for their TTL: the drain is confirmed only after that TTL
// from the mark, and a timeout within it says so, naming the reader.
func TestDrainWaitsOutDNSAnswers(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	putReader(t, etcd.Client, catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Revision: 1 << 40, AnswerTTL: 2}, grantLease(t, etcd.Client, time.Minute))

	start := time.Now()
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=10s&deregister=false"), 10*time.Second)
	if !out.Confirmed || time.Since(start) < 2*time.Second {
		t.Fatalf("drain with a DNS reader of 2s answers: %+v after %v, want confirmed after 2s", out, time.Since(start))
	}
	out = drainAnswer(t, startDrain(t, reg.URL, "?timeout=1s&deregister=false"), 10*time.Second)
	if out.Confirmed || out.Ended != "timeout" || len(out.Pending) != 1 || out.Pending[0].ID != "dns-1" {
		t.Fatalf("drain timing out within the DNS answers' TTL: %+v, want timeout pending on dns-1", out)
	}
}

// TestDrainOutlivesTTL: a process that stops heartbeating when it asks for
// its drain (as Keepalive does) has an instance whose TTL is shorter than
// the drain's wait. The instance must stay registered, draining, for the
// whole wait and be deregistered by the drain — not expire on its own
// midway, which left "deregistered": false and the drain's end to chance.
func TestDrainOutlivesTTL(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80, TTL: api.Duration(5 * time.Second)})
	putReader(t, etcd.Client, catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Revision: 1 << 40, AnswerTTL: 8}, grantLease(t, etcd.Client, time.Minute))

	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=20s"), 20*time.Second)
	if !out.Confirmed || !out.Deregistered || time.Duration(out.Waited) < 8*time.Second {
		t.Fatalf("drain of a 5s-TTL instance held 8s: %+v, want confirmed and deregistered by the drain", out)
	}
}
