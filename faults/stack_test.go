//go:build linux

package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	// Caddy's http app and reverse_proxy, and NetSel's Caddy modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/netsel/netsel/caddymodule"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"

	// The netsel CoreDNS plugin.
	_ "github.com/netsel/netsel/plugin"
)

var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// etcdKind starts one kind of etcd for a test and returns its client URL and
// a client of it.
type etcdKind struct {
	name  string
	start func(t *testing.T) (url string, cli *clientv3.Client)
}

// etcdKinds are the etcds the fault tests run against: embedded in the
// test process, and Debian's etcd server as a separate process.
var etcdKinds = []etcdKind{
	{"embedded", func(t *testing.T) (string, *clientv3.Client) {
		e := testenv.StartEtcd(t)
		return e.URL, e.Client
	}},
	{"process", func(t *testing.T) (string, *clientv3.Client) {
		c := testenv.StartEtcdProcess(t)
		return c.URL(), c.Client()
	}},
}

// vipRange returns a random /24 of 127.79.0.0/16 for one test's VIPs: local
// on Linux loopback, and apart from other packages' tests and a developer's
// running NetSel.
func vipRange() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 79, byte(1 + rand.IntN(254)), 0}), 24)
}

// startRegistrar runs an in-process registrar over etcd at endpoints,
// allocating VIPs from cidr, with short deadlines so faults show quickly.
func startRegistrar(t *testing.T, cidr netip.Prefix, endpoints ...string) *testenv.Registrar {
	t.Helper()
	return testenv.StartRegistrar(t, endpoints[0], func(c *registrar.Config) {
		if len(endpoints) > 1 {
			c.Client = testenv.NewClient(t, endpoints...)
		}
		c.VIPCIDR = cidr
		c.RequestTimeout = 3 * time.Second
		c.EtcdTimeout = time.Second
	})
}

// newClient returns a registrar client of urls that logs only errors.
func newClient(t *testing.T, urls ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		URLs:       urls,
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startDNS runs CoreDNS with the netsel plugin reading etcd at endpoints and
// returns its UDP address.
func startDNS(t *testing.T, endpoints ...string) string {
	t.Helper()
	udp, _ := testenv.StartCoreDNS(t, fmt.Sprintf(`netsel.:0 {
    bind 127.0.0.1
    netsel {
        endpoint %s
    }
}
`, strings.Join(endpoints, " ")))
	return udp
}

// startProxies runs Caddy with the netsel app reading etcd at endpoints:
// the HTTP proxy (configured as build/netsel configures it) on the returned
// address, and the VIP listeners.
func startProxies(t *testing.T, endpoints ...string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cfg, err := json.Marshal(map[string]any{
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"netsel": map[string]any{
				"endpoints": endpoints,
				"vip_proxy": map[string]any{"enabled": true, "dial_timeout": "2s", "bind_retry": "200ms"},
			},
			"http": map[string]any{"servers": map[string]any{"netsel": map[string]any{
				"listen":          []string{addr},
				"automatic_https": map[string]any{"disable": true},
				"routes": []any{map[string]any{"handle": []any{
					map[string]any{"handler": "netsel"},
					map[string]any{
						"handler":           "reverse_proxy",
						"dynamic_upstreams": map[string]any{"source": "netsel"},
						"load_balancing": map[string]any{
							"retries":          2,
							"selection_policy": map[string]any{"policy": "netsel_weighted"},
						},
						"health_checks": map[string]any{"passive": map[string]any{"fail_duration": "10s"}},
						"transport":     map[string]any{"protocol": "http", "dial_timeout": "2s"},
					},
				}}},
			}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartCaddy(t, cfg)
	return addr
}

// caddyIndex returns the catalog index of the running Caddy config's netsel
// app.
func caddyIndex(t *testing.T) *catalog.Index {
	t.Helper()
	app, err := caddy.ActiveContext().App("netsel")
	if err != nil {
		t.Fatalf("netsel app: %v", err)
	}
	return app.(*caddymodule.App).Index()
}

// registration is the registration of b as instance id of service.
func registration(b *testenv.Backend, service, id string, ttl time.Duration) client.Registration {
	return client.Registration{Service: service, ID: id, Address: b.Addr.Addr().String(), Port: int(b.Addr.Port()), TTL: ttl}
}

// httpClient has no keep-alive, so each request opens a new connection
// and sees the proxy's current routing.
var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// viaProxy sends GET / with Host host through the HTTP proxy at addr and
// returns the body of a 200, or an error.
func viaProxy(addr, host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// viaVIP sends an HTTP/1.1 GET over a new TCP connection to vip (a VIP
// listener) and returns the body of a 200, or an error.
func viaVIP(vip netip.AddrPort) (string, error) {
	c, err := net.DialTimeout("tcp", vip.String(), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		return "", fmt.Errorf("bad answer through VIP %s: %q", vip, b)
	}
	return body, nil
}

// seen calls f n times and returns the set of answers, or the first error.
func seen(n int, f func() (string, error)) (map[string]bool, error) {
	m := map[string]bool{}
	for range n {
		s, err := f()
		if err != nil {
			return m, err
		}
		m[s] = true
	}
	return m, nil
}

// query asks the DNS server at addr over UDP, with a 1s timeout.
func query(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// srvTargets returns the SRV targets of service name, sorted as answered.
func srvTargets(addr, name string) (map[string]bool, error) {
	r, err := query(addr, name+".netsel.", dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("SRV %s: %s", name, dns.RcodeToString[r.Rcode])
	}
	m := map[string]bool{}
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			m[srv.Target] = true
		}
	}
	return m, nil
}

// vipOf returns the A record of service name.
func vipOf(addr, name string) (netip.Addr, error) {
	r, err := query(addr, name+".netsel.", dns.TypeA)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("A %s: %s, no address", name, dns.RcodeToString[r.Rcode])
}

// targets returns the SRV targets of ids of service.
func targets(service string, ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id+"."+service+".netsel."] = true
	}
	return m
}

// sameSet reports whether a and b hold the same keys.
func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
