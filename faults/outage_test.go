//go:build linux

package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// outage is a way to take etcd away from NetSel and give it back.
type outage struct {
	name string
	// start starts etcd and returns the URL NetSel uses, a client for the
	// test's own checks (usable outside the outage) and the fault.
	start func(t *testing.T) (url string, cli *clientv3.Client, breakFn, heal func())
}

var outages = []outage{
	{"process-killed", func(t *testing.T) (string, *clientv3.Client, func(), func()) {
		c := testenv.StartEtcdProcess(t)
		m := c.Members[0]
		return c.URL(), c.Client(), m.Kill, m.Start
	}},
	{"process-paused", func(t *testing.T) (string, *clientv3.Client, func(), func()) {
		c := testenv.StartEtcdProcess(t)
		m := c.Members[0]
		return c.URL(), c.Client(), m.Pause, m.Resume
	}},
	{"embedded-cut", func(t *testing.T) (string, *clientv3.Client, func(), func()) {
		e := testenv.StartEtcd(t)
		p := testenv.StartProxy(t, strings.TrimPrefix(e.URL, "http://"))
		return "http://" + p.Addr(), e.Client, p.Cut, p.Restore
	}},
}

// Times of TestEtcdOutage: the instances' TTL, their heartbeat interval
// and how long etcd is away (well under the TTL).
const (
	outageTTL      = 10 * time.Second
	outageInterval = 500 * time.Millisecond
	outageFor      = 4 * time.Second
)

// TestEtcdOutage takes etcd away for less than the instances' TTL — a
// killed or frozen etcd process, or a cut network to embedded etcd — and
// gives it back. Throughout, and while the readers reconnect, DNS, the HTTP
// proxy and the VIP proxy answer from their last state; meanwhile the
// registrar answers 503 with Retry-After within its deadline, and stale
// reads from its index; afterwards every kept-alive instance is still
// registered under its first lease and VIP, without registering again.
func TestEtcdOutage(t *testing.T) {
	for _, o := range outages {
		t.Run(o.name, func(t *testing.T) { testOutage(t, o) })
	}
}

func testOutage(t *testing.T, o outage) {
	url, cli, breakEtcd, heal := o.start(t)
	n := startStack(t, vipRange(), []string{url}, withRegistrar|withDNS|withProxies)
	regURL, dnsAddr, httpAddr := n.RegistrarURL, n.DNSAddr, n.HTTPAddr
	c := newClient(t, regURL)

	b0, b1 := testenv.StartBackend(t, "web-0"), testenv.StartBackend(t, "web-1")
	k0 := keepalive(t, c, registration(b0, "web", "web-0", outageTTL), outageInterval)
	k1 := keepalive(t, c, registration(b1, "web", "web-1", outageTTL), outageInterval)
	testenv.Eventually(t, 10*time.Second, func() bool {
		return k0.registered() != nil && k1.registered() != nil
	}, "instances never registered")
	a0, a1 := k0.registered(), k1.registered()
	if a0.VIP != a1.VIP {
		t.Fatalf("one service, two VIPs: %v and %v", a0.VIP, a1.VIP)
	}
	vip := netip.AddrPortFrom(a0.VIP, uint16(a0.Port))
	both := map[string]bool{"web-0": true, "web-1": true}
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "web")
		return err == nil && sameSet(got, targets("web", "web-0", "web-1"))
	}, "DNS never served both instances")
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := seen(6, func() (string, error) { return viaProxy(httpAddr, "web.netsel") })
		return err == nil && sameSet(got, both)
	}, "HTTP proxy never reached both instances")
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := seen(6, func() (string, error) { return viaVIP(vip) })
		return err == nil && sameSet(got, both)
	}, "VIP %s never reached both instances", vip)

	// The registrar's own index must hold both too: its stale reads are
	// checked against them during the outage.
	testenv.Eventually(t, 10*time.Second, func() bool {
		a := call("GET", regURL+"/v1/services/web?stale", nil)
		return a.err == nil && a.status == http.StatusOK && strings.Contains(a.body, "web-0") && strings.Contains(a.body, "web-1")
	}, "the registrar's index never served both instances")

	readers := watchReaders(dnsAddr, httpAddr, vip, "web", "web-0", "web-1")
	breakEtcd()
	broken := time.Now()
	t.Logf("etcd away (%s)", o.name)

	// The registrar, probed in the background: every answer that needs
	// etcd is a 503 with Retry-After, within the request deadline; stale
	// reads are answered from the index.
	type probe struct {
		what  string
		at    time.Duration // since the outage began
		stale bool
		answer
	}
	var (
		wg     sync.WaitGroup
		probes []probe
		stop   = make(chan struct{})
	)
	wg.Go(func() {
		for {
			for _, p := range []probe{
				{what: "register"},
				{what: "heartbeat"},
				{what: "read"},
				{what: "stale read", stale: true},
				{what: "health"},
			} {
				select {
				case <-stop:
					return
				default:
				}
				p.at = time.Since(broken)
				switch p.what {
				case "register":
					p.answer = call("POST", regURL+"/v1/services/web/instances", api.RegisterRequest{ID: "probe", Address: "127.0.0.1", Port: 1, TTL: api.Duration(outageTTL)})
				case "heartbeat":
					p.answer = call("PUT", regURL+"/v1/services/web/instances/web-0/heartbeat", nil)
				case "read":
					p.answer = call("GET", regURL+"/v1/services/web", nil)
				case "stale read":
					p.answer = call("GET", regURL+"/v1/services/web?stale", nil)
				case "health":
					p.answer = call("GET", regURL+"/v1/health", nil)
				}
				probes = append(probes, p)
			}
		}
	})

	// The outage lasts outageFor (this is the fault's length, not a wait
	// for a condition); the readers are checked in the background.
	time.Sleep(time.Until(broken.Add(outageFor)))
	close(stop)
	wg.Wait()
	t.Logf("%d registrar probes during the outage", len(probes))
	if len(probes) == 0 {
		t.Fatal("no registrar probe finished during the outage")
	}
	for _, p := range probes {
		switch {
		case p.err != nil:
			t.Errorf("registrar %s %v into the outage: %v", p.what, p.at, p.err)
		case p.took > 3*time.Second+time.Second:
			t.Errorf("registrar %s %v into the outage answered after %v, past its 3s request deadline", p.what, p.at, p.took)
		case p.stale:
			if p.status != http.StatusOK || !strings.Contains(p.body, "web-0") {
				t.Errorf("registrar stale read %v into the outage: %d %s; want 200 from the index", p.at, p.status, p.body)
			}
		case p.what == "heartbeat" && p.status == http.StatusOK && p.at < time.Second:
			// A renewal answered just before the outage may answer it.
		case p.status != http.StatusServiceUnavailable || p.retryAfter == "":
			t.Errorf("registrar %s %v into the outage: %d (Retry-After %q) %s; want 503 with Retry-After", p.what, p.at, p.status, p.retryAfter, p.body)
		}
	}

	heal()
	healed := time.Now()
	t.Logf("etcd back after %v", healed.Sub(broken))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testenv.Eventually(t, 15*time.Second, func() bool {
		return c.Heartbeat(ctx, "web", "web-0") == nil && c.Heartbeat(ctx, "web", "web-1") == nil
	}, "heartbeats never succeeded after etcd came back")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return k0.quiet(4*outageInterval) && k1.quiet(4*outageInterval)
	}, "Keepalive still retrying after etcd came back")
	t.Logf("heartbeats back %v after etcd", time.Since(healed))
	readers.finish(t, "from the outage to heartbeats back")

	// Both instances are still there under their first lease: nothing
	// expired and nothing was registered again.
	k0.check(t)
	k1.check(t)
	e, _, err := catalog.LoadService(ctx, cli, ks, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil || e.Service == nil || e.Service.VIP != a0.VIP {
		t.Fatalf("service web after the outage: %+v; want VIP %v", e, a0.VIP)
	}
	leases := map[string]int64{"web-0": a0.Lease, "web-1": a1.Lease}
	if e.Len() != 2 {
		t.Errorf("%d instances after the outage, want web-0 and web-1: %v", e.Len(), instanceIDs(e))
	}
	for _, in := range e.Instances() {
		if want, ok := leases[in.ID]; !ok || in.Lease != want {
			t.Errorf("instance %s on lease %x, want %x (first registration)", in.ID, in.Lease, want)
		}
	}
	if orphans, total, err := orphanLeases(ctx, cli); err == nil {
		t.Logf("after the outage: %d leases, %d holding no key (grants that reached etcd after the registrar gave up on them expire with their TTL)", total, len(orphans))
	}
	// The registrar works again and hands out the same VIP.
	if a := call("POST", regURL+"/v1/services/web/instances", api.RegisterRequest{ID: "after", Address: "127.0.0.1", Port: 1}); a.status != http.StatusOK || !strings.Contains(a.body, a0.VIP.String()) {
		t.Errorf("registration after the outage: %d %s; want 200 with VIP %v", a.status, a.body, a0.VIP)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "web")
		return err == nil && sameSet(got, targets("web", "web-0", "web-1", "after"))
	}, "DNS never served the registration made after the outage")
}

func instanceIDs(e *catalog.Entry) []string {
	var ids []string
	for _, in := range e.Instances() {
		ids = append(ids, fmt.Sprintf("%s@%x", in.ID, in.Lease))
	}
	return ids
}
