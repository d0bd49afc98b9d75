package registrar_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// Adversarial tests of maintenance and drain (review of issue 11). Each
// fails on the code it was written against; see the report of branch
// h-review.

// TestAdversarialDrainTimeoutOverflow attacks ?timeout= with a number of
// seconds whose conversion to a time.Duration overflows:
// 18446744074 s wraps to about 290 ms, inside (0, 10m], so the drain is
// accepted and gives up almost at once instead of being refused.
// Expected: 400 naming "timeout", as for any timeout over 10m.
func TestAdversarialDrainTimeoutOverflow(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	for _, q := range []string{"18446744074", "9223372037"} {
		r := do(t, "POST", reg.URL+"/v1/services/web/instances/a/drain?deregister=false&timeout="+q, nil)
		if r.status != http.StatusBadRequest || r.apiError(t).Field != "timeout" {
			t.Errorf("timeout=%s: %d %s, want 400 field timeout (it is far over 10m)", q, r.status, r.body)
		}
	}
}

// TestAdversarialDrainLeaselessReader attacks drains with a reader key
// written with no lease (a hostile or buggy process holding the
// netsel-reader role, or one left by hand): it never expires, so every
// drain waits for it until its timeout, for ever. Readers are documented
// as keeping a *leased* key; a key with no lease is no live reader.
// Expected: the drain ignores it and is confirmed by the live readers.
func TestAdversarialDrainLeaselessReader(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	live := catalog.Reader{ID: "dns-1", Kind: catalog.ReaderDNS, Revision: 1 << 40}
	putReader(t, etcd.Client, live, grantLease(t, etcd.Client, 60*time.Second))
	ghost := catalog.Reader{ID: "ghost", Kind: catalog.ReaderProxy, Revision: 1, Updated: time.Now().Add(-24 * time.Hour)}
	putReader(t, etcd.Client, ghost, 0)
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=2s&deregister=false"), 10*time.Second)
	if !out.Confirmed || out.Readers != 1 {
		t.Errorf("drain with a leaseless, day-old reader key: %+v, want confirmed by the one live (leased) reader", out)
	}
}

// TestAdversarialDrainThenReregister plays a rolling restart that keeps
// the instance id: the old process drains (deregister=true); while the
// drain waits for a slow reader, the new process registers the same id at
// a new address. When the drain ends it deletes the instance key
// whatever lease it is on, so the new process's registration is removed
// too: it drops out of every answer until its next heartbeat gets a 404.
// Expected: a drain deregisters only the registration it drained (the
// lease it marked); a registration made meanwhile stays.
func TestAdversarialDrainThenReregister(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	slow := catalog.Reader{ID: "proxy-1", Kind: catalog.ReaderProxy, Revision: 1}
	putReader(t, etcd.Client, slow, grantLease(t, etcd.Client, 60*time.Second))
	ch := startDrain(t, reg.URL, "?timeout=5s")
	testenv.Eventually(t, 5*time.Second, func() bool { return modRevision(t, etcd.Client, ks.DrainKey("web", "a")) > 0 },
		"the drain did not mark the instance")
	// The new process.
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.3", Port: 80})
	out := drainAnswer(t, ch, 15*time.Second)
	t.Logf("drain: %+v", out)
	in, ok := instances(t, reg.URL, "web", "?state=any")["a"]
	if !ok || in.Address.String() != "127.0.0.3" {
		t.Errorf("after the old process's drain, the new registration of a is %+v (present %v), want it kept at 127.0.0.3", in, ok)
	}
}

// TestAdversarialMaintenanceReasonControl puts a maintenance reason made
// of terminal control sequences (ESC [2J clears the screen of whoever runs
// `netsel instances`; a newline forges a line in logs and listings). The
// reason is only checked for length and UTF-8.
// Expected: 400 naming "reason" for control characters.
func TestAdversarialMaintenanceReasonControl(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	for _, reason := range []string{"\x1b[2J\x1b[Hall good", "upgrade\n  b  127.0.0.9:80  passing"} {
		r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a/maintenance", api.MaintenanceRequest{Reason: reason})
		if r.status != http.StatusBadRequest || r.apiError(t).Field != "reason" {
			t.Errorf("reason %q: %d %s, want 400 field reason", reason, r.status, r.body)
		}
	}
}

// TestAdversarialReaderHugeConnections: a process with the reader role
// writes a reader key whose Connections map has 50,000 entries (~1 MB;
// real readers report at most catalog.MaxReportedConnections). Nothing
// bounds it on the way in: GET /v1/readers and every drain's answer (in
// Pending) carry all of it, and every drain decodes it again on each
// reader event.
// Expected: reader reports over the bound are cut to it (or skipped and
// counted): at most MaxReportedConnections entries in the answers.
func TestAdversarialReaderHugeConnections(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	huge := catalog.Reader{ID: "proxy-huge", Kind: catalog.ReaderProxy, Revision: 1, Connections: map[string]int{}}
	for i := range 50000 {
		huge.Connections[fmt.Sprintf("svc%d/instance-%d", i, i)] = i + 1
	}
	putReader(t, etcd.Client, huge, grantLease(t, etcd.Client, 60*time.Second))
	r := do(t, "GET", reg.URL+"/v1/readers", nil)
	var l api.ReaderList
	r.decode(t, &l)
	if len(l.Readers) != 1 || len(l.Readers[0].Connections) > catalog.MaxReportedConnections {
		t.Errorf("GET /v1/readers: %d bytes, %d readers, %d connections in the first; want at most %d",
			len(r.body), len(l.Readers), len(l.Readers[0].Connections), catalog.MaxReportedConnections)
	}
	out := drainAnswer(t, startDrain(t, reg.URL, "?timeout=1s&deregister=false"), 10*time.Second)
	if len(out.Pending) == 1 && len(out.Pending[0].Connections) > catalog.MaxReportedConnections {
		t.Errorf("drain answer carries %d connections of one pending reader, want at most %d",
			len(out.Pending[0].Connections), catalog.MaxReportedConnections)
	}
}
