package netsel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

func hasTarget(target string) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		for _, rr := range m.Answer {
			if srv, ok := rr.(*dns.SRV); ok && srv.Target == target {
				return true
			}
		}
		return false
	}
}

func not(f func(*dns.Msg) bool) func(*dns.Msg) bool { return func(m *dns.Msg) bool { return !f(m) } }

// TestFreshness checks that registrations, deletions and lease expiries are
// visible in DNS within a second.
func TestFreshness(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "api", "127.77.0.2")
	e.waitReady(t)

	e.putInstance(t, inst("api", "one", "127.0.0.11", 7000), 0)
	e.waitFor(t, time.Second, "api.netsel.", dns.TypeSRV, hasTarget("one.api.netsel."), "registration not seen")
	e.waitFor(t, time.Second, "one.api.netsel.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 }, "instance A not seen")

	e.del(t, e.ks.InstanceKey("api", "one"))
	e.waitFor(t, time.Second, "api.netsel.", dns.TypeSRV, not(hasTarget("one.api.netsel.")), "deletion not seen")
	e.waitFor(t, time.Second, "one.api.netsel.", dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError }, "deleted instance still resolves")

	// Expiry: the lease runs out; etcd deletes the key.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := e.etcd.Client.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.putInstance(t, inst("api", "two", "127.0.0.12", 7000), lease.ID)
	e.waitFor(t, time.Second, "api.netsel.", dns.TypeSRV, hasTarget("two.api.netsel."), "leased registration not seen")
	expired := make(chan time.Time, 1)
	go func() {
		w := e.etcd.Client.Watch(ctx, e.ks.InstanceKey("api", "two"))
		for wr := range w {
			for _, ev := range wr.Events {
				if ev.Type == 1 { // DELETE
					expired <- time.Now()
					return
				}
			}
		}
	}()
	e.waitFor(t, 10*time.Second, "api.netsel.", dns.TypeSRV, not(hasTarget("two.api.netsel.")), "expired instance still served")
	select {
	case at := <-expired:
		if d := time.Since(at); d > time.Second {
			t.Errorf("expiry seen in DNS %v after etcd deleted the key", d)
		}
	case <-time.After(time.Second):
		t.Error("DNS dropped the instance but etcd reported no deletion")
	}
}

// TestTruncation checks that a big SRV answer sets TC over UDP, still parses,
// honours the EDNS0 buffer size, and comes whole over TCP.
func TestTruncation(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "big", "127.77.0.3")
	var rev int64
	for i := range 200 {
		rev = e.putInstance(t, inst("big", fmt.Sprintf("i%03d", i), fmt.Sprintf("127.0.%d.%d", i/250, i%250+1), 8000+i), 0)
	}
	e.waitReady(t)
	e.waitFor(t, 5*time.Second, "big.netsel.", dns.TypeSOA, func(m *dns.Msg) bool {
		return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
	}, "index not at revision")

	m := query(t, e.udp, "udp", "big.netsel.", dns.TypeSRV)
	if !m.Truncated || len(m.Answer) >= 200 {
		t.Errorf("UDP without EDNS0: TC %v with %d answers, want TC and fewer than 200", m.Truncated, len(m.Answer))
	}
	if l := wireLen(m); l > dns.MinMsgSize {
		t.Errorf("UDP without EDNS0: %d bytes, want at most %d", l, dns.MinMsgSize)
	}

	req := new(dns.Msg)
	req.SetQuestion("big.netsel.", dns.TypeSRV)
	req.SetEdns0(1232, false)
	m = exchange(t, e.udp, "udp", req)
	if !m.Truncated {
		t.Errorf("UDP with a 1232-byte buffer: TC not set with %d answers", len(m.Answer))
	}
	if l := wireLen(m); l > 1232 {
		t.Errorf("UDP with a 1232-byte buffer: %d bytes", l)
	}
	if len(m.Answer) < 10 {
		t.Errorf("UDP with a 1232-byte buffer: only %d answers", len(m.Answer))
	}

	m = query(t, e.tcp, "tcp", "big.netsel.", dns.TypeSRV)
	if m.Truncated || len(m.Answer) != 200 || len(m.Extra) != 200 {
		t.Errorf("TCP: TC %v, %d answers, %d additional; want all 200 and their glue", m.Truncated, len(m.Answer), len(m.Extra))
	}

	// Shuffled: two answers over TCP are unlikely to come in the same order.
	first := query(t, e.tcp, "tcp", "big.netsel.", dns.TypeSRV).Answer[0].(*dns.SRV).Target
	shuffled := false
	for range 10 {
		if query(t, e.tcp, "tcp", "big.netsel.", dns.TypeSRV).Answer[0].(*dns.SRV).Target != first {
			shuffled = true
			break
		}
	}
	if !shuffled {
		t.Error("SRV answers are not shuffled")
	}
}

// wireLen is the size of m as the server sent it, compressed.
func wireLen(m *dns.Msg) int {
	m.Compress = true
	return m.Len()
}

// TestFallthrough checks that names outside the zones reach the next plugin
// (whoami, which comes after netsel), and NXDOMAINs inside them too only
// with fallthrough.
func TestFallthrough(t *testing.T) {
	for _, tt := range []struct {
		name   string
		block  string
		fallNX bool
	}{
		{"without", "netsel netsel. {\n endpoint %s\n }", false},
		{"all zones", "netsel netsel. {\n endpoint %s\n fallthrough\n }", true},
		{"listed zone", "netsel netsel. {\n endpoint %s\n fallthrough netsel.\n }", true},
		{"other zone", "netsel netsel. {\n endpoint %s\n fallthrough example.org.\n }", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, tt.block, "whoami")
			e.putService(t, "web", "127.77.0.1")
			e.waitReady(t)
			e.waitFor(t, time.Second, "web.netsel.", dns.TypeA, func(m *dns.Msg) bool { return len(m.Answer) == 1 }, "service not served")

			isWhoami := func(m *dns.Msg) bool { return m.Rcode == dns.RcodeSuccess && len(withoutOPT(m.Extra)) > 0 }
			if m := query(t, e.udp, "udp", "example.org.", dns.TypeA); !isWhoami(m) {
				t.Errorf("outside the zone: want whoami's answer, got\n%v", m)
			}
			m := query(t, e.udp, "udp", "nosuch.netsel.", dns.TypeA)
			if got := isWhoami(m); got != tt.fallNX {
				t.Errorf("NXDOMAIN in the zone reached the next plugin: %v, want %v\n%v", got, tt.fallNX, m)
			}
			if m := query(t, e.udp, "udp", "web.netsel.", dns.TypeTXT); m.Rcode != dns.RcodeSuccess || len(m.Ns) != 1 {
				t.Errorf("NODATA must not fall through:\n%v", m)
			}
		})
	}
}

// TestUndecodable checks that keys and values that do not decode are
// skipped, counted and never served, while the rest is.
func TestUndecodable(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	e.putService(t, "good", "127.77.0.4")
	e.putInstance(t, inst("good", "ok", "127.0.0.20", 80), 0)
	e.put(t, e.ks.InstanceKey("good", "bad"), `{"id":"bad","service":"good","address":"not-an-ip","port":80}`)
	e.put(t, e.ks.ServiceKey("broken"), `{not json`)
	e.put(t, e.ks.InstanceKey("broken", "x"), `{"id":"x","service":"broken","address":"127.0.0.21","port":0}`)
	e.put(t, e.ks.Prefix()+"instances/Bad_Name/x", `{}`)
	e.waitReady(t)

	e.waitFor(t, 5*time.Second, "good.netsel.", dns.TypeSRV, func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.SRV).Target == "ok.good.netsel."
	}, "want only the valid instance")
	for _, q := range []string{"bad.good.netsel.", "broken.netsel.", "x.broken.netsel."} {
		if m := query(t, e.udp, "udp", q, dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %s, want NXDOMAIN", q, dns.RcodeToString[m.Rcode])
		}
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		return metricValue(t, "coredns_netsel_skipped_keys_total", e.etcd.URL) >= 3
	}, "coredns_netsel_skipped_keys_total below 3")
}

// metricValue returns the value of the netsel metric name for the index on
// endpoint, or -1.
func metricValue(t *testing.T, name, endpoint string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoints" && l.GetValue() == endpoint {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestEtcdAway checks that while etcd cannot be reached the last good state
// is served at once, and that changes made meanwhile appear once it is back.
func TestEtcdAway(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	e := &env{etcd: etcd, ks: catalog.MustKeyspace(catalog.DefaultPrefix)}
	e.udp, e.tcp = testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, "http://"+proxy.Addr()), ""))
	e.putService(t, "web", "127.77.0.1")
	e.putInstance(t, inst("web", "a", "127.0.0.10", 80), 0)
	e.waitReady(t)
	e.waitFor(t, time.Second, "web.netsel.", dns.TypeSRV, hasTarget("a.web.netsel."), "instance not served")

	proxy.Cut()
	e.putInstance(t, inst("web", "b", "127.0.0.11", 80), 0) // not seen while cut
	for range 20 {
		start := time.Now()
		m := query(t, e.udp, "udp", "web.netsel.", dns.TypeSRV)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("query took %v with etcd away", d)
		}
		if !hasTarget("a.web.netsel.")(m) {
			t.Fatalf("last good state not served with etcd away:\n%v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}

	proxy.Restore()
	e.waitFor(t, 10*time.Second, "web.netsel.", dns.TypeSRV, hasTarget("b.web.netsel."), "change made while away not seen after reconnect")
}

// TestSharedIndex checks that blocks with one configuration share an index.
func TestSharedIndex(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	block := fmt.Sprintf("netsel netsel. {\n endpoint %s\n }", etcd.URL)
	cf := fmt.Sprintf("netsel.:0 {\n bind 127.0.0.1\n %s\n}\nother.:0 {\n bind 127.0.0.1\n %s\n}\n", block, block)
	testenv.StartCoreDNS(t, cf)
	n := 0
	eachIndex(func(s *sharedIndex) {
		if s.labels.endpoints == etcd.URL {
			n++
			if s.refs != 2 {
				t.Errorf("index has %d references, want 2", s.refs)
			}
		}
	})
	if n != 1 {
		t.Errorf("%d indexes for %s, want 1", n, etcd.URL)
	}
}
