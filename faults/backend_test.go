//go:build linux

package faults

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// backendTTL is the TTL of the instances of TestBackendDies: long, so the
// dead instance stays registered for the whole test.
const backendTTL = time.Minute

// TestBackendDies kills one of three backends without deregistering it. The
// HTTP proxy and the VIP proxy route around it at once on connection
// failure: every request of a concurrent burst right after the kill
// succeeds on a live instance, while the dead one is still in the catalog.
func TestBackendDies(t *testing.T) {
	e := testenv.StartEtcd(t)
	n := startStack(t, vipRange(), []string{e.URL}, withRegistrar|withProxies)
	httpAddr := n.HTTPAddr
	ix := caddyIndex(t)
	c := newClient(t, n.RegistrarURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	names := []string{"app-0", "app-1", "app-2"}
	bs := map[string]*testenv.Backend{}
	var vip netip.AddrPort
	for _, name := range names {
		bs[name] = testenv.StartBackend(t, name)
		a, err := c.Register(ctx, registration(bs[name], "app", name, backendTTL))
		if err != nil {
			t.Fatal(err)
		}
		vip = netip.AddrPortFrom(a.VIP, uint16(a.Port))
	}
	all := map[string]bool{"app-0": true, "app-1": true, "app-2": true}
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := seen(9, func() (string, error) { return viaProxy(httpAddr, "app.netsel") })
		return err == nil && sameSet(got, all)
	}, "HTTP proxy never reached all three instances")
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := seen(9, func() (string, error) { return viaVIP(vip) })
		return err == nil && sameSet(got, all)
	}, "VIP %s never reached all three instances", vip)

	bs["app-1"].Kill()
	killed := time.Now()
	live := map[string]bool{"app-0": true, "app-2": true}
	const workers, each = 6, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				via, f := "HTTP proxy", func() (string, error) { return viaProxy(httpAddr, "app.netsel") }
				if (w+i)%2 == 1 {
					via, f = "VIP "+vip.String(), func() (string, error) { return viaVIP(vip) }
				}
				got, err := f()
				if err != nil || !live[got] {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %q, %v", via, got, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(killed)
	for _, e := range errs {
		t.Errorf("request right after the kill: %s", e)
	}
	t.Logf("%d requests through both proxies in %v after the kill, %d failed", workers*each, took, len(errs))
	if took > backendTTL/4 {
		t.Errorf("the burst took %v; the proxies must not wait for the %v TTL", took, backendTTL)
	}
	// The dead instance is still registered: routing around it was the
	// proxies' doing, not the catalog's.
	if en, ok := ix.Snapshot().Service("app"); !ok || en.Len() != 3 {
		t.Errorf("the catalog no longer holds all three instances after the burst: %+v", en)
	}
}
