package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
)

func TestHTTPRoutesByHost(t *testing.T) {
	e := newEnv(t)
	for _, svc := range []string{"alpha", "beta"} {
		e.service(svc, randomVIP())
		for i := range 3 {
			b := startBackend(t, fmt.Sprintf("%s-%d", svc, i))
			e.instance(svc, fmt.Sprintf("i%d", i), b.addr, 1)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true})
	client := newClient()
	waitServed(t, client, addr, "alpha.netsel")

	for _, svc := range []string{"alpha", "beta"} {
		for _, host := range []string{svc + ".netsel", strings.ToUpper(svc) + ".netsel:8081", svc + ".netsel."} {
			got := counts(t, client, addr, host, 60)
			if len(got) != 3 {
				t.Errorf("Host %s: answers %v, want the 3 instances of %s", host, got, svc)
			}
			for body := range got {
				if !strings.HasPrefix(body, svc+"-") {
					t.Errorf("Host %s reached %q", host, body)
				}
			}
		}
	}
}

func TestHTTPWeights(t *testing.T) {
	e := newEnv(t)
	e.service("heavy", randomVIP())
	light, heavy := startBackend(t, "light"), startBackend(t, "heavy")
	e.instance("heavy", "a", light.addr, 1)
	e.instance("heavy", "b", heavy.addr, 4)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr})
	client := newClient()
	waitServed(t, client, addr, "heavy.netsel")

	got := counts(t, client, addr, "heavy.netsel", 500)
	// Expect 100 light / 400 heavy; a binomial sd is ~9.
	if got["light"] < 55 || got["light"] > 145 || got["light"]+got["heavy"] != 500 {
		t.Errorf("answers %v, want about 100 light and 400 heavy", got)
	}
}

func TestHTTPInstanceLeavesRotation(t *testing.T) {
	e := newEnv(t)
	e.service("web", randomVIP())
	var bs []*backend
	for i := range 3 {
		bs = append(bs, startBackend(t, fmt.Sprintf("web-%d", i)))
	}
	e.instance("web", "i0", bs[0].addr, 1)
	e.instance("web", "i1", bs[1].addr, 1)
	lease, err := e.cli.Grant(context.Background(), 2) // etcd's floor is about 2 s
	if err != nil {
		t.Fatal(err)
	}
	e.instance("web", "i2", bs[2].addr, 1, clientv3.WithLease(lease.ID))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr})
	client := newClient()
	waitServed(t, client, addr, "web.netsel")
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(counts(t, client, addr, "web.netsel", 30)) == 3
	}, "not all three instances served")

	// Deregistered: gone from rotation within a second.
	e.del(ks.InstanceKey("web", "i0"))
	start := time.Now()
	testenv.Eventually(t, time.Second, func() bool {
		return counts(t, client, addr, "web.netsel", 20)["web-0"] == 0
	}, "deleted instance still served")
	t.Logf("deleted instance left rotation after %v", time.Since(start))

	// Expired: wait for etcd to drop the key, then gone within a second.
	testenv.Eventually(t, 10*time.Second, func() bool {
		r, err := e.cli.Get(context.Background(), ks.InstanceKey("web", "i2"))
		return err == nil && len(r.Kvs) == 0
	}, "lease never expired")
	start = time.Now()
	testenv.Eventually(t, time.Second, func() bool {
		return counts(t, client, addr, "web.netsel", 20)["web-2"] == 0
	}, "expired instance still served")
	t.Logf("expired instance left rotation after %v", time.Since(start))
	if got := counts(t, client, addr, "web.netsel", 20); got["web-1"] != 20 {
		t.Errorf("answers %v, want only web-1", got)
	}
}

func TestHTTPKilledBackendSkipped(t *testing.T) {
	e := newEnv(t)
	e.service("api", randomVIP())
	var bs []*backend
	for i := range 3 {
		b := startBackend(t, fmt.Sprintf("api-%d", i))
		bs = append(bs, b)
		e.instance("api", fmt.Sprintf("i%d", i), b.addr, 1)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr})
	client := newClient()
	waitServed(t, client, addr, "api.netsel")

	bs[1].kill() // still registered: Caddy's retry and passive checks must cover it
	got := counts(t, client, addr, "api.netsel", 60)
	if got["api-1"] != 0 || got["api-0"]+got["api-2"] != 60 {
		t.Errorf("answers %v, want all 60 from api-0 and api-2", got)
	}
}

func TestHTTPUnknownServiceFails502Fast(t *testing.T) {
	e := newEnv(t)
	e.service("empty", randomVIP())
	e.service("web", randomVIP())
	b := startBackend(t, "web")
	e.instance("web", "i0", b.addr, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true})
	client := newClient()
	waitServed(t, client, addr, "web.netsel")

	for _, tc := range []struct{ host, body string }{
		{"nosuch.netsel", `unknown service "nosuch"`},
		{"empty.netsel", `service "empty" has no healthy instance`},
		{"-bad-.netsel", "names no service"},
	} {
		start := time.Now()
		code, body := get(t, client, addr, tc.host)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("Host %s: answer took %v", tc.host, d)
		}
		if code != http.StatusBadGateway || !strings.Contains(body, tc.body) {
			t.Errorf("Host %s: %d %q, want 502 containing %q", tc.host, code, body, tc.body)
		}
	}
}

func TestHTTPNoGuardFailsFast(t *testing.T) {
	e := newEnv(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr})
	client := newClient()
	start := time.Now()
	code, _ := get(t, client, addr, "nosuch.netsel")
	if d := time.Since(start); code != http.StatusServiceUnavailable || d > 500*time.Millisecond {
		t.Errorf("without the netsel handler: %d after %v, want Caddy's 503 at once", code, d)
	}
}

func TestHTTPActiveHealthCheck(t *testing.T) {
	e := newEnv(t)
	e.service("hc", randomVIP())
	up := startBackend(t, "up")
	down := startBackend(t, "down")
	e.instance("hc", "a", up.addr, 1)
	e.instance("hc", "b", down.addr, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr,
		health: map[string]any{"interval": "100ms", "timeout": "200ms", "path": "/"}})
	client := newClient()
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(counts(t, client, addr, "hc.netsel", 20)) == 2
	}, "both instances never served")
	app := activeApp(t)
	down.kill()
	// Passive checks would also hide it from the proxy: look at what the
	// source serves.
	testenv.Eventually(t, 2*time.Second, func() bool {
		v := app.view("hc")
		return len(v.dials) == 1 && v.dials[0] == up.addr
	}, "failing instance never left the view")
	if got := counts(t, client, addr, "hc.netsel", 20); got["up"] != 20 {
		t.Errorf("answers %v, want only up", got)
	}
}

// activeApp returns the netsel app of the running Caddy config.
func activeApp(t *testing.T) *App {
	t.Helper()
	a, err := caddy.ActiveContext().App("netsel")
	if err != nil {
		t.Fatal(err)
	}
	return a.(*App)
}

// Until the app has read the catalog, a request is not for an "unknown
// service": the guard answers 503 with Retry-After, fast.
func TestHTTPBeforeSyncIs503(t *testing.T) {
	deadEtcd := "http://" + testenv.FreeAddr(t) // nothing listens there
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: deadEtcd, httpAddr: addr, guard: true})
	client := newClient()
	var code int
	var body string
	testenv.Eventually(t, 5*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = "web.netsel"
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		return true
	}, "proxy at %s never answered", addr)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not loaded from etcd yet") {
		t.Fatalf("before sync: %d %q, want 503 saying the catalog is not loaded", code, body)
	}
}

// TestHTTPUnreachableNamesService: when no instance of a service can be
// reached — its only instance refuses the dial, then is marked down — the
// proxy answers 502 naming the service, with Retry-After, never Caddy's
// bare status.
func TestHTTPUnreachableNamesService(t *testing.T) {
	e := newEnv(t)
	e.service("dead", randomVIP())
	b := startBackend(t, "dead")
	e.instance("dead", "i0", b.addr, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true})
	client := newClient()
	waitServed(t, client, addr, "dead.netsel")
	b.kill()
	for i := range 3 { // the dial fails, then the instance is marked down
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "dead.netsel"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `service "dead"`) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("request %d to a service with no reachable instance: %s %q Retry-After %q; want 502 naming the service, with Retry-After",
				i, resp.Status, body, resp.Header.Get("Retry-After"))
		}
	}
}

// TestHTTPUpgradeThroughHandler: a protocol upgrade (WebSocket's form)
// passes the netsel handler: the 101 and the switched connection reach
// the client both ways.
func TestHTTPUpgradeThroughHandler(t *testing.T) {
	e := newEnv(t)
	e.service("ws", randomVIP())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			io.WriteString(w, "ws")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.instance("ws", "i0", ln.Addr().String(), 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true})
	waitServed(t, newClient(), addr, "ws.netsel")

	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: ws.netsel\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the proxy: %v %v", resp, err)
	}
	io.WriteString(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo over the upgraded connection: %q %v", line, err)
	}
}
