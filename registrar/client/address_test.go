package client_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

func hostAddr(a string) testenv.RegistrarOption {
	return func(c *registrar.Config) { c.HostAddr = netip.MustParseAddr(a) }
}

// TestRegisterFillsAddress: Register without an Address, to a registrar
// on this host, leaves the address to the registrar: a multi-host one
// registers its host address (and records it as the host), a single-host
// one the loopback address the request came from.
func TestRegisterFillsAddress(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		opts       []testenv.RegistrarOption
		addr, host string
	}{
		{"multi-host", []testenv.RegistrarOption{hostAddr("198.18.0.11")}, "198.18.0.11", "198.18.0.11"},
		{"single-host", nil, "127.0.0.1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testenv.StartRegistrar(t, etcd.URL, tc.opts...)
			c := newClient(t, reg.URL)
			a, err := c.Register(ctx, client.Registration{Service: tc.name, Port: 8080})
			if err != nil {
				t.Fatalf("register without an address: %v", err)
			}
			if a.Address.String() != tc.addr {
				t.Errorf("registered at %v, want %s", a.Address, tc.addr)
			}
			svc, err := c.Service(ctx, tc.name)
			if err != nil || len(svc.Instances) != 1 {
				t.Fatalf("service: %+v %v", svc, err)
			}
			in := svc.Instances[0]
			host := ""
			if in.Host.IsValid() {
				host = in.Host.String()
			}
			if in.Address.String() != tc.addr || host != tc.host {
				t.Errorf("instance at %v from host %q, want %s from %q", in.Address, host, tc.addr, tc.host)
			}
		})
	}
}

// TestKeepaliveKeepsAddress: Keepalive registers again at the address its
// first registration got, though the registrar that answers then would
// fill in another. Two multi-host registrars that say they are on
// different hosts stand in for a fail-over between hosts.
func TestKeepaliveKeepsAddress(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	r1 := testenv.StartRegistrar(t, etcd.URL, hostAddr("198.18.0.11"))
	r2 := testenv.StartRegistrar(t, etcd.URL, hostAddr("198.18.0.12"))
	c := newClient(t, r1.URL, r2.URL)
	ev, stop := startKeepalive(t, c, client.Registration{Service: "web", ID: "k1", Port: 80, TTL: 5 * time.Second})
	if a := ev.assignments()[0]; a.Address.String() != "198.18.0.11" {
		t.Fatalf("first registration at %v, want the first registrar's host 198.18.0.11", a.Address)
	}
	r1.Stop()
	if _, err := etcd.Client.Delete(context.Background(), ks.InstanceKey("web", "k1")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return ev.count(client.EventRegistered) >= 2 }, "never registered again")
	if a := ev.assignments()[1]; a.Address.String() != "198.18.0.11" {
		t.Errorf("registered again at %v, want the first registration's 198.18.0.11", a.Address)
	}
	svc, err := c.Service(context.Background(), "web")
	if err != nil || len(svc.Instances) != 1 || svc.Instances[0].Address.String() != "198.18.0.11" {
		t.Fatalf("service after the new registration: %+v %v, want k1 at 198.18.0.11", svc, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
}
