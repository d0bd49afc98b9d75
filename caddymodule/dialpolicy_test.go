package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// countingListener stands for one of NetSel's own servers: it counts the
// connections it accepts and closes them.
func countingListener(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// TestProxiesNeverDialRefused writes instances straight to etcd, as anything
// but the registrar could, at (a) their own VIP:port, (b) the HTTP proxy's
// own address, (c) a reserved address (a NetSel server) and (d) another
// service's VIP, and checks that neither proxy dials them: the HTTP proxy
// answers 502 at once, the VIP listeners reset at once, the reserved server
// sees no connection, and the process's descriptors stay bounded.
func TestProxiesNeverDialRefused(t *testing.T) {
	e := newEnv(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	reserved, dialled := countingListener(t)
	port := func(p int) catalog.Port {
		return catalog.Port{Name: catalog.DefaultPortName, Port: p, Protocol: catalog.ProtocolTCP}
	}

	web := startBackend(t, "web")
	webVIP := randomVIP()
	e.service("web", webVIP, port(7000))
	e.instance("web", "i0", web.addr, 1)

	selfVIP := randomVIP()
	e.service("vipself", selfVIP, port(7001))
	e.instance("vipself", "i0", hostPort(selfVIP, 7001), 1) // (a)
	e.service("httpself", randomVIP(), port(7002))
	e.instance("httpself", "i0", httpAddr, 1) // (b)
	e.service("reserved", randomVIP(), port(7003))
	e.instance("reserved", "i0", reserved, 1) // (c)
	e.service("atvip", randomVIP(), port(7004))
	e.instance("atvip", "i0", hostPort(webVIP, 7000), 1) // (d): not in any configured range

	// The app reserves its config's own listeners (httpAddr) by itself.
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true, vip: true,
		dial: map[string]any{"reserved": []string{reserved}}})
	client := newClient()
	waitServed(t, client, httpAddr, "web.netsel")
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", hostPort(webVIP, 7000), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "VIP listener of web never opened")

	before := testenv.OpenFDs(t)
	for svc, vipPort := range map[string]string{
		"vipself":  hostPort(selfVIP, 7001),
		"httpself": vipOf(t, svc(e, "httpself"), 7002),
		"reserved": vipOf(t, svc(e, "reserved"), 7003),
		"atvip":    vipOf(t, svc(e, "atvip"), 7004),
	} {
		var (
			c     net.Conn
			start time.Time
		)
		testenv.Eventually(t, 5*time.Second, func() bool {
			var err error
			start = time.Now()
			c, err = net.DialTimeout("tcp", vipPort, time.Second)
			// Refused: the listener is not open yet. Reset: it accepted
			// and reset at once, which is what is wanted.
			return !errors.Is(err, syscall.ECONNREFUSED)
		}, "VIP listener of %s never opened", svc)
		if c != nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			n, err := c.Read(make([]byte, 1))
			var ne net.Error
			if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("VIP of %s (%s): read %d bytes, %v; want the connection refused at once", svc, vipPort, n, err)
			}
			c.Close()
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("VIP of %s: refused after %v", svc, d)
		}
		if fds := testenv.OpenFDs(t); fds > before+32 {
			t.Fatalf("one connection to the VIP of %s took descriptors from %d to %d", svc, before, fds)
		}
	}
	for _, svc := range []string{"vipself", "httpself", "reserved", "atvip"} {
		start := time.Now()
		code, body := get(t, client, httpAddr, svc+".netsel")
		if d := time.Since(start); d > time.Second {
			t.Errorf("HTTP %s: answer took %v", svc, d)
		}
		if code != http.StatusBadGateway || !strings.Contains(body, "no instance the proxy may dial") {
			t.Errorf("HTTP %s: %d %q, want 502 saying no instance may be dialled", svc, code, body)
		}
	}
	if n := dialled.Load(); n != 0 {
		t.Errorf("the reserved server was dialled %d times", n)
	}
	if fds := testenv.OpenFDs(t); fds > before+32 {
		t.Errorf("descriptors went from %d to %d", before, fds)
	}
	// The service next to them keeps working.
	if code, body := get(t, client, httpAddr, "web.netsel"); code != http.StatusOK || body != "web" {
		t.Errorf("web after the attacks: %d %q", code, body)
	}
}

func svc(e *env, name string) *catalog.Service {
	e.t.Helper()
	var out *catalog.Service
	testenv.Eventually(e.t, 5*time.Second, func() bool {
		a := activeApp(e.t)
		if en, ok := a.Index().Snapshot().Service(name); ok && en.Service != nil {
			out = en.Service
			return true
		}
		return false
	}, "service %s never indexed", name)
	return out
}

func vipOf(t *testing.T, s *catalog.Service, port int) string {
	t.Helper()
	return netip.AddrPortFrom(s.VIP, uint16(port)).String()
}

// TestHTTPLoopIs508: an instance at an address that leads back to the HTTP
// proxy through a hop the dial policy cannot know (a TCP relay, as a NAT or
// another proxy would be) makes a request come back; the hop marker answers
// it 508 at once instead of ~1,200 hops.
func TestHTTPLoopIs508(t *testing.T) {
	e := newEnv(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	relay := testenv.StartProxy(t, httpAddr)
	e.service("loop", randomVIP())
	e.instance("loop", "i0", relay.Addr(), 1)
	web := startBackend(t, "web")
	e.service("web", randomVIP())
	e.instance("web", "i0", web.addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true})
	client := newClient()
	waitServed(t, client, httpAddr, "web.netsel")

	before := testenv.OpenFDs(t)
	start := time.Now()
	// The loop's Host must stay in the zone on the way back: Caddy passes
	// the Host on.
	code, body := get(t, client, httpAddr, "loop.netsel")
	if d := time.Since(start); d > time.Second {
		t.Errorf("loop answered after %v", d)
	}
	if code != http.StatusLoopDetected || !strings.Contains(body, "loop detected") {
		t.Errorf("loop: %d %q, want 508 saying loop detected", code, body)
	}
	if fds := testenv.OpenFDs(t); fds > before+32 {
		t.Errorf("one looping request took descriptors from %d to %d", before, fds)
	}
	// A request that passed through another proxy, or this one under
	// another config, is not a loop.
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/", nil)
	req.Host = "web.netsel"
	req.Header.Set("Via", "1.1 netsel-000000000000, 1.1 Caddy")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("request via another proxy: %d, want 200", resp.StatusCode)
	}
}

// TestHostRouting: the HTTP proxy routes only <service>.<zone> Hosts; a
// Host such as 127.0.0.1 does not reach a service named "127".
func TestHostRouting(t *testing.T) {
	e := newEnv(t)
	b := startBackend(t, "numeric")
	e.service("127", randomVIP())
	e.instance("127", "i0", b.addr, 1)
	web := startBackend(t, "web")
	e.service("web", randomVIP())
	e.instance("web", "i0", web.addr, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true, zones: []string{"netsel", "svc.example.org"}})
	client := newClient()
	waitServed(t, client, addr, "web.netsel")

	for _, tc := range []struct {
		host string
		code int
		body string
	}{
		{"web.netsel:8081", 200, "web"},
		{"WEB.NETSEL.", 200, "web"},
		{"web.svc.example.org", 200, "web"},
		{"127.netsel", 200, "numeric"},
		{"127.0.0.1", 404, "zone netsel, svc.example.org"},
		{addr, 404, "zone netsel"},
		{"web", 404, "zone netsel"},
		{"web.example.com", 404, "zone netsel"},
		{"[::1]:8081", 404, "zone netsel"},
		{"i0.web.netsel", 502, "names no service"},
	} {
		code, body := get(t, client, addr, tc.host)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("Host %s: %d %q, want %d with %q", tc.host, code, body, tc.code, tc.body)
		}
	}
}

// TestHealthChecksNeverDialRefused: active health checks do not connect to
// an instance at a refused address either.
func TestHealthChecksNeverDialRefused(t *testing.T) {
	e := newEnv(t)
	reserved, dialled := countingListener(t)
	e.service("hc", randomVIP())
	e.instance("hc", "bad", reserved, 1)
	up := startBackend(t, "up")
	down := startBackend(t, "down")
	e.instance("hc", "up", up.addr, 1)
	e.instance("hc", "down", down.addr, 1)
	down.kill()
	startCaddy(t, config{etcdURL: e.etcd.URL,
		health: map[string]any{"interval": "50ms", "timeout": "200ms"},
		dial:   map[string]any{"reserved": []string{reserved}}})
	app := activeApp(t)
	// Once the dead instance is marked down, rounds have run over every
	// instance of the service.
	testenv.Eventually(t, 5*time.Second, func() bool {
		hs := app.health.state()
		return hs != nil && !hs.healthy("hc", "down")
	}, "the dead instance was never marked down")
	if n := dialled.Load(); n != 0 {
		t.Errorf("health checks connected to the reserved address %d times", n)
	}
	if v := app.view("hc"); len(v.dials) != 1 || v.dials[0] != up.addr {
		t.Errorf("view dials %v, want only %s", v.dials, up.addr)
	}
}
