//go:build linux

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
)

// TestWatchCompacted cuts the network between etcd and the readers (the
// CoreDNS plugin and the Caddy app), changes the catalog and compacts
// etcd's history past the readers' watches, then restores the network.
// Both readers re-list, count it, and converge on etcd's state; while cut
// they serve the state they had.
func TestWatchCompacted(t *testing.T) {
	for _, kind := range etcdKinds {
		t.Run(kind.name, func(t *testing.T) { testWatchCompacted(t, kind) })
	}
}

func testWatchCompacted(t *testing.T, kind etcdKind) {
	url, cli := kind.start(t)
	proxy := testenv.StartProxy(t, strings.TrimPrefix(url, "http://"))
	readerURL := "http://" + proxy.Addr()
	vips := vipRange()
	reg := startRegistrar(t, vips, url)
	n := startStack(t, vips, []string{readerURL}, withDNS|withProxies)
	dnsAddr, httpAddr := n.DNSAddr, n.HTTPAddr
	ix := caddyIndex(t)
	c := newClient(t, reg.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	bs := map[string]*testenv.Backend{}
	for _, name := range []string{"web-0", "web-1", "web-2", "api-0"} {
		bs[name] = testenv.StartBackend(t, name)
	}
	register := func(service, id string) {
		t.Helper()
		if _, err := c.Register(ctx, registration(bs[id], service, id, time.Minute)); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	register("web", "web-0")
	register("web", "web-1")
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "web")
		return err == nil && sameSet(got, targets("web", "web-0", "web-1"))
	}, "DNS never served web-0 and web-1")
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := seen(6, func() (string, error) { return viaProxy(httpAddr, "web.netsel") })
		return err == nil && sameSet(got, map[string]bool{"web-0": true, "web-1": true})
	}, "HTTP proxy never reached web-0 and web-1")
	dnsRelists, caddyRelists := pluginRelists(t, readerURL), ix.Stats().Relists

	proxy.Cut()
	if err := c.Deregister(ctx, "web", "web-0"); err != nil {
		t.Fatal(err)
	}
	register("web", "web-2")
	register("api", "api-0")
	resp, err := cli.Get(ctx, ks.Prefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact at %d: %v", resp.Header.Revision, err)
	}
	t.Logf("compacted at revision %d with the readers cut off", resp.Header.Revision)
	if got, err := srvTargets(dnsAddr, "web"); err != nil || !sameSet(got, targets("web", "web-0", "web-1")) {
		t.Errorf("DNS while cut: %v, %v; want the last state, web-0 and web-1", got, err)
	}
	if r, err := query(dnsAddr, "api.netsel.", dns.TypeA); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("DNS while cut answered api: %v, %v; want NXDOMAIN, as before the cut", r, err)
	}

	proxy.Restore()
	restored := time.Now()
	testenv.Eventually(t, 15*time.Second, func() bool {
		return pluginRelists(t, readerURL) > dnsRelists && ix.Stats().Relists > caddyRelists
	}, "readers did not re-list after a compacted watch: plugin relists %v (was %v), Caddy app relists %v (was %v)",
		lazy(func() any { return pluginRelists(t, readerURL) }), dnsRelists, lazy(func() any { return ix.Stats().Relists }), caddyRelists)
	t.Logf("both readers re-listed %v after the network came back", time.Since(restored))
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "web")
		return err == nil && sameSet(got, targets("web", "web-1", "web-2"))
	}, "DNS did not converge on web-1 and web-2")
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "api")
		return err == nil && sameSet(got, targets("api", "api-0"))
	}, "DNS did not converge on api-0")
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := seen(8, func() (string, error) { return viaProxy(httpAddr, "web.netsel") })
		return err == nil && sameSet(got, map[string]bool{"web-1": true, "web-2": true})
	}, "HTTP proxy did not converge on web-1 and web-2")
	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := viaProxy(httpAddr, "api.netsel")
		return err == nil && got == "api-0"
	}, "HTTP proxy did not converge on api-0")
}

// pluginRelists returns the CoreDNS plugin's coredns_netsel_relists_total
// for the index reading endpoint, or -1 when there is none.
func pluginRelists(t *testing.T, endpoint string) int64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "coredns_netsel_relists_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoints" && l.GetValue() == endpoint {
					return int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return -1
}

// lazy formats as f's result when printed.
type lazy func() any

func (l lazy) String() string { return fmt.Sprint(l()) }
