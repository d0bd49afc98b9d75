package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestStackAddressPolicy plays a client that aims the proxies at NetSel
// itself: registrations at every address the runner listens on, in its VIP
// range or in -deny-cidr are refused with 400 naming "address"; an instance
// written straight to etcd at the embedded etcd's client address is never
// dialled by the HTTP proxy; and the proxy routes only <service>.<zone>.
func TestStackAddressPolicy(t *testing.T) {
	f := stackFlags(t, "127.78.0.0/16")
	f.denyCIDR = "127.0.9.0/24"
	runTestStack(t, f)
	registrar := "http://" + f.registrar

	post := func(body string) (int, map[string]string) {
		t.Helper()
		resp, err := http.Post(registrar+"/v1/services/web/instances", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e map[string]string
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	at := func(hostport string) string {
		ap := netip.MustParseAddrPort(hostport)
		return fmt.Sprintf(`{"address":%q,"port":%d}`, ap.Addr(), ap.Port())
	}
	for name, body := range map[string]string{
		"registrar":          at(f.registrar),
		"DNS":                at(f.dns),
		"HTTP proxy":         at(f.http),
		"etcd client":        at(f.etcdListen),
		"etcd peer":          at(f.etcdPeer),
		"VIP range":          `{"address":"127.78.0.10","port":80}`,
		"-deny-cidr":         `{"address":"127.0.9.1","port":80}`,
		"IPv4-mapped 0/8":    `{"address":"::ffff:0.0.0.0","port":80}`,
		"broadcast":          `{"address":"255.255.255.255","port":80}`,
		"etcd IPv4-mapped":   fmt.Sprintf(`{"address":"::ffff:127.0.0.1","port":%d}`, netip.MustParseAddrPort(f.etcdListen).Port()),
		"etcd as named port": fmt.Sprintf(`{"address":"127.0.0.1","port":8080,"ports":{"default":8080,"etcd":%d}}`, netip.MustParseAddrPort(f.etcdListen).Port()),
	} {
		code, e := post(body)
		if code != http.StatusBadRequest || e["field"] != "address" {
			t.Errorf("%s: %s got %d %v, want 400 naming address", name, body, code, e)
		}
	}

	// An instance written to etcd by anything but the registrar, at
	// etcd's own client address: the HTTP proxy never reaches etcd.
	backend := testenv.StartBackend(t, "web")
	cli := testenv.NewClient(t, "http://"+f.etcdListen)
	ks := catalog.MustKeyspace(f.prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(svc, id string, ap netip.AddrPort) {
		t.Helper()
		b, err := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: svc, Address: ap.Addr(), Port: int(ap.Port()), Weight: 1, Registered: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, ks.InstanceKey(svc, id), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	if code, e := post(at(backend.Addr.String())); code != http.StatusOK {
		t.Fatalf("register web at %s: %d %v", backend.Addr, code, e)
	}
	// Service "kv" exists through the registrar; its instance is then
	// rewritten in etcd to point at etcd itself.
	resp, err := http.Post(registrar+"/v1/services/kv/instances", "application/json", strings.NewReader(`{"id":"k","address":"127.0.0.1","port":1,"ttl":"1h"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	put("kv", "k", netip.MustParseAddrPort(f.etcdListen))

	get := func(host string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.http+"/v3/kv/range", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET via %s: %v", host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	port := netip.MustParseAddrPort(f.http).Port()
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, body := get(fmt.Sprintf("web.netsel:%d", port))
		return code == http.StatusOK && body == "web"
	}, "web.netsel never served through the HTTP proxy")
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, body := get("kv.netsel")
		return code == http.StatusBadGateway && strings.Contains(body, "no instance the proxy may dial")
	}, "the proxy does not refuse an instance at etcd's client address")
	if code, body := get("127.0.0.1"); code != http.StatusNotFound || !strings.Contains(body, "zone netsel") {
		t.Errorf("Host 127.0.0.1: %d %q, want 404 naming the zone", code, body)
	}
}
