//go:build linux

package faults

import (
	"context"
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

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/caddymodule"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/stack"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
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
// allocating VIPs from cidr, with short deadlines so faults show quickly:
// for tests with registrars of their own, apart from a stack (several at
// once, or over other endpoints than the stack's readers).
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

// part is a part of NetSel a test's stack runs.
type part int

const (
	withRegistrar part = 1 << iota
	withDNS
	withProxies
)

// netsel is the stack a test runs: internal/stack, as the runner starts it.
type netsel struct {
	// RegistrarURL is the registrar's base URL, "" without one.
	RegistrarURL string
	// DNSAddr is the DNS server's address, UDP and TCP, "" without one.
	DNSAddr string
	// HTTPAddr is the HTTP proxy's address, "" without one.
	HTTPAddr string
}

// startStack runs the parts of internal/stack, as the runner composes
// them, over etcd at endpoints, allocating VIPs from cidr, on free loopback
// ports: the registrar (with short deadlines so faults show quickly), DNS
// for netsel., and the HTTP proxy with the VIP proxy (retrying a VIP:port
// it could not bind every 200ms). As the runner does, instances are kept
// off the stack's own addresses. The stack is closed when the test ends.
// CoreDNS and Caddy are process-wide: tests that start a stack must not
// run in parallel.
func startStack(t *testing.T, cidr netip.Prefix, endpoints []string, parts part) *netsel {
	t.Helper()
	n := &netsel{}
	var listen []string
	free := func() string {
		a := testenv.FreeAddr(t)
		listen = append(listen, a)
		return a
	}
	var registrarCfg *stack.Registrar
	if parts&withRegistrar != 0 {
		addr := free()
		n.RegistrarURL = "http://" + addr
		registrarCfg = &stack.Registrar{Addr: addr, Configure: func(c *registrar.Config) {
			c.RequestTimeout = 3 * time.Second
			c.EtcdTimeout = time.Second
		}}
	}
	var dnsCfg *stack.DNS
	if parts&withDNS != 0 {
		n.DNSAddr = free()
		dnsCfg = &stack.DNS{Addr: n.DNSAddr, Zone: "netsel."}
	}
	var proxyCfg *stack.Proxy
	if parts&withProxies != 0 {
		n.HTTPAddr = free()
		proxyCfg = &stack.Proxy{
			HTTPAddr:  n.HTTPAddr,
			Zone:      "netsel.",
			VIP:       true,
			VIPLimits: caddymodule.VIPProxyConfig{BindRetry: caddy.Duration(200 * time.Millisecond)},
		}
	}
	reserved := append(listen, endpoints...)
	var policy addrpolicy.Config
	for _, a := range reserved {
		aps, err := addrpolicy.ParseListen(context.Background(), nil, a)
		if err != nil {
			t.Fatal(err)
		}
		policy.Reserved = append(policy.Reserved, aps...)
	}
	s, err := stack.Start(context.Background(), stack.Config{
		Etcd:          stack.Etcd{Endpoints: endpoints},
		Keyspace:      ks,
		VIPCIDR:       cidr,
		Registrar:     registrarCfg,
		DNS:           dnsCfg,
		Proxy:         proxyCfg,
		AddrPolicy:    policy,
		ReservedAddrs: reserved,
		Logger:        slog.New(slog.NewTextHandler(testenv.LogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
		LogLevel:      slog.LevelWarn,
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close stack: %v", err)
		}
	})
	return n
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
