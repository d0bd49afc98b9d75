package netsel

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// srvTargets returns the sorted targets of m's SRV answers.
func srvTargets(m *dns.Msg) string {
	var ts []string
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			ts = append(ts, strings.TrimSuffix(srv.Target, ".api.netsel."))
		}
	}
	slices.Sort(ts)
	return strings.Join(ts, ",")
}

// TestHealthStates: SRV answers follow the state of each instance —
// critical ones leave unless every one is critical, instances in
// maintenance or draining always leave — over UDP and TCP, while every
// instance keeps its own name; and the DNS reader reports the revision it
// answers from while an instance drains.
func TestHealthStates(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "api", "127.77.0.2")
	e.waitReady(t)
	for _, id := range []string{"one", "two", "three"} {
		e.putInstance(t, inst("api", id, "127.0.0.11", 7000), 0)
	}
	side := func(key string, v any) int64 {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return e.put(t, key, string(b))
	}
	want := func(targets, what string) {
		t.Helper()
		for _, proto := range []string{"udp", "tcp"} {
			addr := e.udp
			if proto == "tcp" {
				addr = e.tcp
			}
			var got string
			deadline := time.Now().Add(2 * time.Second)
			for {
				if got = srvTargets(query(t, addr, proto, "api.netsel.", dns.TypeSRV)); got == targets {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: SRV over %s answers %q, want %q", what, proto, got, targets)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	want("one,three,two", "all passing")

	side(e.ks.HealthKey("api", "one"), &catalog.Health{State: catalog.StateCritical, Output: "timeout"})
	want("three,two", "one critical")
	if m := query(t, e.udp, "udp", "one.api.netsel.", dns.TypeA); len(m.Answer) != 1 {
		t.Fatalf("a critical instance's own name: %v", m)
	}
	side(e.ks.HealthKey("api", "two"), &catalog.Health{State: catalog.StateWarning})
	want("three,two", "two warning")
	side(e.ks.MaintenanceKey("api", "three"), &catalog.Maintenance{Reason: "disk"})
	want("two", "three in maintenance")
	side(e.ks.HealthKey("api", "two"), &catalog.Health{State: catalog.StateCritical})
	want("one,two", "every instance not in maintenance critical: all of them served")
	rev := side(e.ks.DrainKey("api", "two"), &catalog.Drain{Since: time.Now()})
	want("one", "two draining")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := e.etcd.Client.Get(ctx, e.ks.ReadersPrefix(), clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 1 {
			r, err := catalog.DecodeReader(resp.Kvs[0].Value)
			if err == nil && r.Kind == catalog.ReaderDNS && r.Revision >= rev {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DNS reader did not report the drain's revision %d: %v", rev, resp.Kvs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.del(t, e.ks.DrainKey("api", "two"))
	e.del(t, e.ks.MaintenanceKey("api", "three"))
	e.del(t, e.ks.HealthKey("api", "one"))
	e.del(t, e.ks.HealthKey("api", "two"))
	want("one,three,two", "all passing again")
}
