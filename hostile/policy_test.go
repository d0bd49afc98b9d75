package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestNoInstanceAtWhatNoProxyMayDial registers instances at NetSel's own
// listeners and at addresses no proxy may dial: every one is a 400 naming
// "address", and nothing is stored.
func TestNoInstanceAtWhatNoProxyMayDial(t *testing.T) {
	r := startRunner(t)
	type target struct {
		what string
		ap   netip.AddrPort
	}
	var targets []target
	for _, flag := range []string{"registrar", "dns", "http", "etcd-listen", "etcd-peer"} {
		targets = append(targets, target{"NetSel's " + flag, netip.MustParseAddrPort(r.addr(flag))})
	}
	vip := r.canaryVI.VIP
	for _, a := range []string{
		"0.0.0.0", "::", "::ffff:0.0.0.0", "255.255.255.255", "224.0.0.1", "ff02::1",
		"169.254.169.254", "fe80::1", vip.String(), "::ffff:" + vip.String(),
		r.vipCIDR.Addr().Next().String(),
	} {
		targets = append(targets, target{a, netip.AddrPortFrom(netip.MustParseAddr(a), 8080)})
	}
	for i, tg := range targets {
		t.Run(tg.what, func(t *testing.T) {
			name := fmt.Sprintf("web-x%d", i)
			status, body := r.register(name, map[string]any{"address": tg.ap.Addr().String(), "port": tg.ap.Port()})
			var e api.Error
			json.Unmarshal(body, &e)
			if status != http.StatusBadRequest || e.Field != "address" {
				t.Errorf("register at %s (%s): %d %s, want 400 naming address", tg.ap, tg.what, status, body)
			}
			// A named port at the listener is refused too.
			status, body = r.register(name, map[string]any{"address": tg.ap.Addr().String(), "port": 1, "ports": map[string]int{"x": int(tg.ap.Port())}})
			if status != http.StatusBadRequest {
				t.Errorf("named port at %s: %d %s, want 400", tg.ap, status, body)
			}
			if status, _ := r.get("/v1/services/" + name); status != http.StatusNotFound {
				t.Errorf("service %s exists after refused registrations (%d)", name, status)
			}
		})
	}
	r.requireServing(t)
}

// putInstance writes an instance straight into etcd, as something other
// than the registrar could, under a lease of an hour.
func (r *runner) putInstance(t *testing.T, in *catalog.Instance) {
	t.Helper()
	c := r.etcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lease, err := c.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	val, err := catalog.EncodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	if _, err := c.Put(ctx, ks.InstanceKey(in.Service, in.ID), string(val), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
}

// hijack registers service name with a harmless backend, then rewrites its
// instance in etcd to point at target, as a writer other than the registrar
// could. It returns the service's VIP:port.
func (r *runner) hijack(t *testing.T, name string, target netip.AddrPort) netip.AddrPort {
	t.Helper()
	status, body := r.register(name, map[string]any{"address": "127.0.0.1", "port": 9, "id": "i1", "ttl": "1h"})
	if status != http.StatusOK {
		t.Fatalf("register %s: %d %s", name, status, body)
	}
	var res api.RegisterResponse
	json.Unmarshal(body, &res)
	r.putInstance(t, &catalog.Instance{ID: "i1", Service: name, Address: target.Addr(), Port: int(target.Port()), Weight: 1, Registered: time.Now().UTC()})
	r.waitInstanceDNS(t, name, "i1", target.Addr())
	return netip.AddrPortFrom(res.VIP, uint16(res.Port))
}

// TestProxiesReachNoNetSelListener points an instance, behind the
// registrar's back, at the embedded etcd and at the registrar: neither
// proxy forwards to them.
func TestProxiesReachNoNetSelListener(t *testing.T) {
	r := startRunner(t)
	for _, flag := range []string{"etcd-listen", "registrar"} {
		t.Run(flag, func(t *testing.T) {
			name := "web-" + strings.ReplaceAll(flag, "-", "")
			vip := r.hijack(t, name, netip.MustParseAddrPort(r.addr(flag)))
			req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr("http")+"/v3/kv/range", strings.NewReader(`{"key":"AA==","range_end":"AA=="}`))
			req.Host = name + ".netsel"
			resp, err := r.http.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Errorf("HTTP proxy forwarded to NetSel's %s: %d %s", flag, resp.StatusCode, b)
				}
			}
			conn, err := net.DialTimeout("tcp", vip.String(), 2*time.Second)
			if err == nil {
				conn.SetDeadline(time.Now().Add(2 * time.Second))
				fmt.Fprintf(conn, "GET /v1/health HTTP/1.0\r\n\r\n")
				b, _ := io.ReadAll(conn)
				conn.Close()
				if len(b) > 0 {
					t.Errorf("VIP proxy forwarded to NetSel's %s: %q", flag, b)
				}
			}
		})
	}
	r.requireServing(t)
}

// TestVIPLoop points a service's instance at the service's own VIP:port:
// one connection must not multiply.
func TestVIPLoop(t *testing.T) {
	r := startRunner(t)
	status, body := r.register("loop", map[string]any{"address": "127.0.0.1", "port": 9, "id": "i1", "ttl": "1h"})
	if status != http.StatusOK {
		t.Fatalf("register: %d %s", status, body)
	}
	var res api.RegisterResponse
	json.Unmarshal(body, &res)
	vip := netip.AddrPortFrom(res.VIP, uint16(res.Port))
	r.putInstance(t, &catalog.Instance{ID: "i1", Service: "loop", Address: vip.Addr(), Port: int(vip.Port()), Weight: 1, Registered: time.Now().UTC()})
	r.waitInstanceDNS(t, "loop", "i1", vip.Addr())
	before := r.fds()
	for range 3 {
		conn, err := net.DialTimeout("tcp", vip.String(), 2*time.Second)
		if err != nil {
			continue
		}
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		conn.Write([]byte("hello\n"))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	if after := r.fds(); after > before+50 {
		t.Errorf("descriptors went from %d to %d after 3 connections to a looping VIP", before, after)
	}
	r.requireServing(t)
}

// TestHTTPLoop points an instance at the HTTP proxy itself: a request is
// answered 508 after at most one hop, and eight of them leave the process
// as it was.
func TestHTTPLoop(t *testing.T) {
	r := startRunner(t)
	r.hijack(t, "hloop", netip.MustParseAddrPort(r.addr("http")))
	before := r.fds()
	for range 8 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.addr("http")+"/", nil)
		req.Host = "hloop.netsel"
		resp, err := r.http.Do(req)
		if err != nil {
			t.Errorf("request: %v", err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("looping request answered %d", resp.StatusCode)
		}
	}
	// A request that already passed through NetSel's proxy is refused.
	if after := r.fds(); after > before+50 {
		t.Errorf("descriptors went from %d to %d after 8 looping requests", before, after)
	}
	r.requireServing(t)
}

// TestHostOutsideZone sends Hosts that are not <service>.<zone>: none
// reaches a service, and the answer names the zone.
func TestHostOutsideZone(t *testing.T) {
	r := startRunner(t)
	if status, body := r.register("127", map[string]any{"address": "127.0.0.1", "port": int(r.canary.Addr.Port())}); status != http.StatusOK {
		t.Fatalf("register: %d %s", status, body)
	}
	for _, host := range []string{"127.0.0.1", "127.0.0.1:" + strings.Split(r.addr("http"), ":")[1], "canary.example.com", "canary"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.addr("http")+"/", nil)
		req.Host = host
		resp, err := r.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "netsel") {
			t.Errorf("Host %s: %d %q, want 404 naming the zone", host, resp.StatusCode, b)
		}
	}
	r.requireServing(t)
}

// waitInstanceDNS waits until DNS answers instance id of service name with
// addr: the catalog watch has carried the change to the readers.
func (r *runner) waitInstanceDNS(t *testing.T, name, id string, addr netip.Addr) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool {
		m := new(dns.Msg)
		m.SetQuestion(id+"."+name+".netsel.", dns.TypeA)
		in, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, r.addr("dns"))
		if err != nil || len(in.Answer) != 1 {
			return false
		}
		a, ok := in.Answer[0].(*dns.A)
		return ok && a.A.String() == addr.Unmap().String()
	}, "DNS never answered %s.%s with %s", id, name, addr)
}
