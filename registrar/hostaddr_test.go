package registrar_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// hostAddr is the address the multi-host registrars of these tests say
// their host is reached at: a test-range address, only stored, never dialled.
var hostAddr = netip.MustParseAddr("198.18.0.11")

func multiHost(c *registrar.Config) { c.HostAddr = hostAddr }

// instanceView returns instance id of service svc as GET /v1/services/svc
// shows it, and the raw record etcd holds for it.
func instanceView(t *testing.T, etcd *clientv3.Client, base, svc, id string) (api.InstanceView, string) {
	t.Helper()
	r := do(t, "GET", base+"/v1/services/"+svc, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", svc, r.status, r.body)
	}
	var view api.ServiceView
	r.decode(t, &view)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcd.Get(ctx, ks.InstanceKey(svc, id))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("instance %s/%s in etcd: %v, %v", svc, id, resp, err)
	}
	for _, in := range view.Instances {
		if in.ID == id {
			return in, string(resp.Kvs[0].Value)
		}
	}
	t.Fatalf("GET %s: no instance %s in %s", svc, id, r.body)
	return api.InstanceView{}, ""
}

// TestMultiHostRefusesLoopback: a multi-host registrar refuses every form
// of a loopback address with a 400 naming "address" that says why and what
// to do instead, and writes nothing; a single-host one accepts them.
func TestMultiHostRefusesLoopback(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	multi := testenv.StartRegistrar(t, etcd.URL, multiHost)
	single := testenv.StartRegistrar(t, etcd.URL)
	for _, addr := range []string{"127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1"} {
		body := api.RegisterRequest{ID: "lo", Address: addr, Port: 8080}
		r := do(t, "POST", multi.URL+"/v1/services/multi/instances", body)
		if r.status != http.StatusBadRequest {
			t.Fatalf("multi-host registration at %s: %d %s, want 400", addr, r.status, r.body)
		}
		e := r.apiError(t)
		for _, want := range []string{"loopback", "only on its own host", hostAddr.String(), "leave address empty"} {
			if e.Field != "address" || !strings.Contains(e.Error, want) {
				t.Errorf("multi-host registration at %s: field %q error %q, want field address and %q", addr, e.Field, e.Error, want)
			}
		}
		register(t, single.URL, "single", body)
	}
	for _, k := range keys(t, etcd.Client) {
		if strings.Contains(k, "multi") {
			t.Errorf("a refused registration left %s in etcd", k)
		}
	}
}

// TestMultiHostAddress: a multi-host registrar registers a non-loopback
// address as given and records the host the request came from — its own
// HostAddr, the request having come over loopback — and fills an empty
// address in with that host.
func TestMultiHostAddress(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, multiHost)
	for _, tc := range []struct{ name, given, want string }{
		{"given", "198.18.0.20", "198.18.0.20"},
		{"given IPv4-mapped", "::ffff:198.18.0.21", "198.18.0.21"},
		{"empty", "", hostAddr.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := register(t, reg.URL, "web", api.RegisterRequest{ID: "i" + strings.ReplaceAll(tc.want, ".", "-"), Address: tc.given, Port: 8080})
			if a.Address.String() != tc.want {
				t.Errorf("answer's address %v, want %s", a.Address, tc.want)
			}
			in, rec := instanceView(t, etcd.Client, reg.URL, "web", a.ID)
			if in.Address.String() != tc.want || in.Host != hostAddr {
				t.Errorf("GET shows address %v host %v, want %s and %v", in.Address, in.Host, tc.want, hostAddr)
			}
			if !strings.Contains(rec, `"host":"`+hostAddr.String()+`"`) {
				t.Errorf("record %s does not name host %v", rec, hostAddr)
			}
		})
	}
}

// TestSingleHostAddress: a single-host registrar fills an empty address in
// with the address the request came from (loopback here) and records no
// host.
func TestSingleHostAddress(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	a := register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Port: 8080})
	if a.Address.String() != "127.0.0.1" {
		t.Errorf("answer's address %v, want 127.0.0.1 (the request's)", a.Address)
	}
	in, rec := instanceView(t, etcd.Client, reg.URL, "web", "a")
	if in.Address.String() != "127.0.0.1" || in.Host.IsValid() {
		t.Errorf("GET shows address %v host %v, want 127.0.0.1 and none", in.Address, in.Host)
	}
	if strings.Contains(rec, `"host"`) {
		t.Errorf("single-host record %s names a host", rec)
	}
}

// TestFilledAddressPolicy: the address policy applies to an address the
// registrar fills in as to a given one.
func TestFilledAddressPolicy(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, multiHost, func(c *registrar.Config) {
		c.AddrPolicy = addrpolicy.Config{Deny: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}}
	})
	r := do(t, "POST", reg.URL+"/v1/services/web/instances", api.RegisterRequest{Port: 8080})
	if e := r.apiError(t); r.status != http.StatusBadRequest || e.Field != "address" || !strings.Contains(e.Error, "filled in") {
		t.Fatalf("registration filled in with a denied address: %d %s, want a 400 naming address and saying it was filled in", r.status, r.body)
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Errorf("refused registration left %v in etcd", k)
	}
}

// TestHostAddrChecked: a host address other hosts cannot reach is refused
// when the registrar is created.
func TestHostAddrChecked(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.2", "0.0.0.0", "fe80::1", "fe80::1%eth0"} {
		_, err := registrar.New(context.Background(), registrar.Config{Client: etcd.Client, HostAddr: netip.MustParseAddr(a)})
		if err == nil || !strings.Contains(err.Error(), "host address") {
			t.Errorf("New with HostAddr %s: %v, want an error about the host address", a, err)
		}
	}
}
