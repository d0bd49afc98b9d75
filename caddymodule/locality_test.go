package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestLocality runs real Caddy from a Caddyfile, with the app's locality
// az1 and without one, in front of a service "web" (HTTP) and a service
// "echo" (TCP on its VIP), each with instances in az1, az2 and no zone.
// With the locality, every HTTP request and every VIP connection goes to
// az1's instances while one serves; to the others while none does (critical
// while others pass, in maintenance, deregistered); back to az1 when one
// serves again; a tag filter prefers az1 within the tagged instances.
// Without it, every instance gets traffic, as before.
func TestLocality(t *testing.T) {
	for _, locality := range []string{"az1", ""} {
		t.Run("locality="+locality, func(t *testing.T) { testLocality(t, locality) })
	}
}

func testLocality(t *testing.T, locality string) {
	e := newEnv(t)
	vip, vport := vipPort(t)
	e.service("web", randomVIP())
	e.service("echo", vip, catalog.Port{Name: catalog.DefaultPortName, Port: vport, Protocol: catalog.ProtocolTCP})
	put := func(svc, id, addr, zone string, tags ...string) {
		ap := netip.MustParseAddrPort(addr)
		b, err := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: svc, Address: ap.Addr(), Port: int(ap.Port()),
			Weight: 1, Zone: zone, Tags: tags, Registered: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		e.put(ks.InstanceKey(svc, id), b)
	}
	zones := map[string]string{"a": "az1", "b": "az1", "c": "az2", "d": ""}
	for _, id := range []string{"a", "b", "c", "d"} {
		var tags []string
		if id == "a" || id == "c" {
			tags = []string{"v2"}
		}
		put("web", id, startBackend(t, id).addr, zones[id], tags...)
		put("echo", id, echoServer(t, id+":"), zones[id])
	}

	port := freePort(t, "127.0.0.1")
	opt := ""
	if locality != "" {
		opt = "locality " + locality
	}
	cfg, err := adapt(t, fmt.Sprintf(`{
	netsel {
		endpoint %s
		%s
		vip_proxy {
			dial_timeout 500ms
			bind_retry 200ms
		}
	}
}
http://:%d {
	netsel
	reverse_proxy {
		dynamic netsel {
			tags_header X-Netsel-Tag
		}
		lb_policy netsel_weighted
	}
}
`, e.etcd.URL, opt, port))
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartCaddy(t, []byte(cfg))
	client := newClient()

	// httpReached sends 40 requests and returns the instances that
	// answered, sorted, or the failure.
	httpReached := func(tag string) string {
		seen := map[string]bool{}
		for range 40 {
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "web.netsel"
			if tag != "" {
				req.Header.Set("X-Netsel-Tag", tag)
			}
			resp, err := client.Do(req)
			if err != nil {
				return err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			}
			seen[string(body)] = true
		}
		return sorted(seen)
	}
	// vipReached opens 12 connections to the echo VIP and returns the
	// instances that answered.
	vipReached := func() string {
		seen := map[string]bool{}
		for range 12 {
			got, err := echoOnce(hostPort(vip, vport), "x")
			if err != nil {
				return err.Error()
			}
			id, _, _ := strings.Cut(got, ":")
			seen[id] = true
		}
		return sorted(seen)
	}
	// expect waits until the proxies reach want (HTTP and VIP) and wantTag
	// (HTTP with the tag v2), then checks it holds once more.
	expect := func(step, want, wantTag string) {
		t.Helper()
		var gotHTTP, gotTag, gotVIP string
		testenv.Eventually(t, 10*time.Second, func() bool {
			gotHTTP, gotTag, gotVIP = httpReached(""), httpReached("v2"), vipReached()
			return gotHTTP == want && gotTag == wantTag && gotVIP == want
		}, "%s: HTTP reached %q, with tag v2 %q, VIP %q; want %q, %q, %q", step,
			lazyString(func() string { return gotHTTP }), lazyString(func() string { return gotTag }),
			lazyString(func() string { return gotVIP }), want, wantTag, want)
		if h, tg, v := httpReached(""), httpReached("v2"), vipReached(); h != want || tg != wantTag || v != want {
			t.Fatalf("%s: then HTTP reached %q, with tag v2 %q, VIP %q; want %q, %q, %q", step, h, tg, v, want, wantTag, want)
		}
	}
	health := func(id, state string) {
		b, err := json.Marshal(&catalog.Health{State: state, Since: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []string{"web", "echo"} {
			e.put(ks.HealthKey(svc, id), b)
		}
	}
	maintenance := func(id string, on bool) {
		for _, svc := range []string{"web", "echo"} {
			if on {
				b, err := json.Marshal(&catalog.Maintenance{Reason: "disk", Since: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				e.put(ks.MaintenanceKey(svc, id), b)
			} else {
				e.del(ks.MaintenanceKey(svc, id))
			}
		}
	}

	if locality == "" {
		expect("no locality", "a,b,c,d", "a,c")
		health("a", catalog.StateCritical)
		expect("no locality, a critical", "b,c,d", "c")
		return
	}
	expect("two zones", "a,b", "a")
	health("a", catalog.StateCritical)
	expect("a critical", "b", "c")
	maintenance("b", true)
	expect("az1 down", "c,d", "c")
	maintenance("b", false)
	expect("b back", "b", "c")
	for _, svc := range []string{"web", "echo"} {
		e.del(ks.InstanceKey(svc, "b"))
	}
	expect("b deregistered", "c,d", "c")
	health("a", catalog.StatePassing)
	expect("a passing", "a", "a")
}

// sorted returns the keys of m, sorted and comma-separated.
func sorted(m map[string]bool) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// lazyString is a fmt.Stringer evaluated when printed.
type lazyString func() string

func (l lazyString) String() string { return l() }

// TestLocalityWindow: with a locality, a big service's windows hold only
// the locality's instances (50 of 200, consecutive among them, from a start
// that changes), and the VIP proxy's candidates too; without one, windows
// range over all 200.
func TestLocalityWindow(t *testing.T) {
	e := testenv.StartEtcd(t)
	svc, _ := catalog.EncodeService(&catalog.Service{Name: "big", VIP: randomVIP(),
		Ports: []catalog.Port{{Name: "default", Port: 80, Protocol: "tcp"}}})
	ops := []clientv3.Op{clientv3.OpPut(ks.ServiceKey("big"), string(svc))}
	for i := range 200 {
		id := fmt.Sprintf("i%05d", i)
		zone := "az2"
		if i%4 == 0 {
			zone = "az1"
		}
		in, _ := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: "big", Zone: zone,
			Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 8080, Weight: 1})
		ops = append(ops, clientv3.OpPut(ks.InstanceKey("big", id), string(in)))
	}
	if _, err := e.Client.Txn(t.Context()).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	ix := syncedIndex(t, e.Client)
	for _, locality := range []string{"az1", ""} {
		app := &App{index: ix, Locality: locality}
		u := &Upstreams{app: app}
		starts := map[int]bool{}
		for range 400 {
			ups, err := u.GetUpstreams(requestFor("big"))
			if err != nil || len(ups) != DefaultWindow {
				t.Fatalf("locality %q: %d upstreams, %v; want a window of %d", locality, len(ups), err, DefaultWindow)
			}
			first := instanceAt(t, ups[0].Dial)
			step, n := 1, 200
			if locality != "" {
				step, n = 4, 50
			}
			for k, up := range ups {
				if got, want := instanceAt(t, up.Dial), (first+k*step)%(n*step); got != want {
					t.Fatalf("locality %q: upstream %d of the window is instance %d, want %d", locality, k, got, want)
				}
			}
			starts[first] = true
		}
		if want := map[string]int{"az1": 40, "": 150}[locality]; len(starts) < want {
			t.Errorf("locality %q: windows began at only %d instances", locality, len(starts))
		}
		cs := app.view("big").byPort["default"]
		if want := map[string]int{"az1": 50, "": 200}[locality]; len(cs) != want {
			t.Errorf("locality %q: %d VIP candidates, want %d", locality, len(cs), want)
		}
	}
}
