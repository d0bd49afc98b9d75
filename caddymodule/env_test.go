package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4/modules/l4http"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// env is one test's etcd, with helpers to write the catalog the way the
// registrar does.
type env struct {
	t    *testing.T
	etcd *testenv.Etcd
	cli  *clientv3.Client
}

// syncedIndex runs a catalog index of cli until the test ends and returns
// it once it has read etcd in full.
func syncedIndex(tb testing.TB, cli *clientv3.Client) *catalog.Index {
	tb.Helper()
	ix := catalog.NewIndex(cli, ks, catalog.IndexOptions{Logf: tb.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	go ix.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ix.WaitSynced(wctx); err != nil {
		tb.Fatal(err)
	}
	return ix
}

func newEnv(t *testing.T) *env {
	e := testenv.StartEtcd(t)
	return &env{t: t, etcd: e, cli: e.Client}
}

func (e *env) put(key string, val []byte, opts ...clientv3.OpOption) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.cli.Put(ctx, key, string(val), opts...); err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
}

func (e *env) del(key string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.cli.Delete(ctx, key); err != nil {
		e.t.Fatalf("delete %s: %v", key, err)
	}
}

// service writes service name with vip (may be invalid for "none") and ports.
func (e *env) service(name string, vip netip.Addr, ports ...catalog.Port) {
	e.t.Helper()
	if !vip.IsValid() {
		vip = randomVIP()
	}
	if len(ports) == 0 {
		ports = []catalog.Port{{Name: catalog.DefaultPortName, Port: 80, Protocol: catalog.ProtocolTCP}}
	}
	b, err := catalog.EncodeService(&catalog.Service{Name: name, VIP: vip, Ports: ports, Created: time.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.put(ks.ServiceKey(name), b)
}

// instance writes an instance of svc at addr (host:port) with weight.
func (e *env) instance(svc, id, addr string, weight int, opts ...clientv3.OpOption) {
	e.t.Helper()
	ap := netip.MustParseAddrPort(addr)
	b, err := catalog.EncodeInstance(&catalog.Instance{
		ID: id, Service: svc, Address: ap.Addr(), Port: int(ap.Port()), Weight: weight, Registered: time.Now(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.put(ks.InstanceKey(svc, id), b, opts...)
}

// randomVIP returns an address in 127.77.0.0/16, local on Linux loopback.
func randomVIP() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 77, byte(1 + rand.IntN(254)), byte(1 + rand.IntN(254))})
}

// freePort returns a port free on ip at the time of the call.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backend is an HTTP server on loopback that answers with its name.
type backend struct {
	name string
	addr string
	srv  *http.Server
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(b.kill)
	return b
}

func (b *backend) kill() { b.srv.Close() }

// echoServer echoes every TCP connection, passing half-closes on.
func echoServer(t *testing.T, prefix string) string {
	t.Helper()
	return testenv.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, prefix)
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	}).String()
}

// config is a Caddy JSON config for the tests.
type config struct {
	etcdURL  string
	httpAddr string // "" for none
	guard    bool   // put the netsel handler before reverse_proxy
	vip      bool
	vipOpts  map[string]any // more vip_proxy options
	health   map[string]any
	l4       map[string]any // layer4 app, if any
	prefix   string
	dial     map[string]any // the app's dial_policy, if any
	zones    []string
}

func (c config) JSON() []byte {
	app := map[string]any{"endpoints": []string{c.etcdURL}}
	if c.prefix != "" {
		app["prefix"] = c.prefix
	}
	if c.vip {
		vp := map[string]any{"enabled": true, "dial_timeout": "500ms", "bind_retry": "200ms"}
		maps.Copy(vp, c.vipOpts)
		app["vip_proxy"] = vp
	}
	if c.health != nil {
		app["health_checks"] = c.health
	}
	if c.dial != nil {
		app["dial_policy"] = c.dial
	}
	if c.zones != nil {
		app["zones"] = c.zones
	}
	apps := map[string]any{"netsel": app}
	if c.httpAddr != "" {
		var handle []any
		if c.guard {
			handle = append(handle, map[string]any{"handler": "netsel"})
		}
		handle = append(handle, map[string]any{
			"handler":           "reverse_proxy",
			"dynamic_upstreams": map[string]any{"source": "netsel"},
			"load_balancing": map[string]any{
				"retries":          2,
				"selection_policy": map[string]any{"policy": "netsel_weighted"},
			},
			"health_checks": map[string]any{"passive": map[string]any{"fail_duration": "10s"}},
			"transport":     map[string]any{"protocol": "netsel", "dial_timeout": "500ms"},
		})
		apps["http"] = map[string]any{"servers": map[string]any{"proxy": map[string]any{
			"listen":          []string{c.httpAddr},
			"protocols":       []string{"h1", "h2", "h2c"},
			"routes":          []any{map[string]any{"handle": handle}},
			"automatic_https": map[string]any{"disable": true},
		}}}
	}
	if c.l4 != nil {
		apps["layer4"] = c.l4
	}
	b, err := json.Marshal(map[string]any{
		"apps":    apps,
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "WARN"}}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// startCaddy runs Caddy with c until the test ends and waits for the netsel
// app's index to sync.
func startCaddy(t *testing.T, c config) {
	t.Helper()
	testenv.StartCaddy(t, c.JSON())
}

// get sends GET / with Host host through the proxy at addr.
func get(t *testing.T, client *http.Client, addr, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s via %s: %v", host, addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func newClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// waitServed polls until a request for host through addr answers 200.
func waitServed(t *testing.T, client *http.Client, addr, host string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, _ := get(t, client, addr, host)
		return code == http.StatusOK
	}, "%s never served through %s", host, addr)
}

// counts sends n requests for host and counts the answers by body.
func counts(t *testing.T, client *http.Client, addr, host string, n int) map[string]int {
	t.Helper()
	m := map[string]int{}
	var mu sync.Mutex
	for range n {
		code, body := get(t, client, addr, host)
		if code != http.StatusOK {
			body = strconv.Itoa(code) + " " + strings.TrimSpace(body)
		}
		mu.Lock()
		m[body]++
		mu.Unlock()
	}
	return m
}

func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hostPort(ip netip.Addr, port int) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }
