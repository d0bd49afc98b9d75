package multihost

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// Hosts by role: A and B run the echo service, C the client.
const (
	hostA = 0
	hostB = 1
	hostC = 2
)

// waitInstances waits until host i's registrar lists exactly ids for
// service name, and returns the service.
func (c *cluster) waitInstances(i int, name string, ids ...string) *api.ServiceView {
	c.t.Helper()
	var svc *api.ServiceView
	testenv.Eventually(c.t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		v, _, err := c.service(ctx, i, name)
		if err != nil {
			return false
		}
		var got []string
		for _, in := range v.Instances {
			got = append(got, in.ID)
		}
		slices.Sort(got)
		svc = v
		return slices.Equal(got, ids)
	}, "host %d's registrar does not list %s instances %v", i, name, ids)
	return svc
}

// port returns the service's VIP:port of its named port.
func port(svc *api.ServiceView, name string) netip.AddrPort {
	for _, p := range svc.Ports {
		if p.Name == name {
			return netip.AddrPortFrom(svc.VIP, uint16(p.Port))
		}
	}
	return netip.AddrPort{}
}

// TestFindAndReach: the client on host C finds echo through its own host's
// DNS (A = the VIP, SRV = the instances on A and B at their host
// addresses) and reaches both instances through its own host's VIP proxy
// and HTTP proxy; the example client passes on C; an instance address that
// is another host's loopback is refused.
func TestFindAndReach(t *testing.T) {
	c := startCluster(t, 3)
	c.startService(hostA, "echo", "a", 20*time.Second, hostA, hostB)
	c.startService(hostB, "echo", "b", 20*time.Second, hostB, hostA)
	svc := c.waitInstances(hostC, "echo", "a", "b")
	if !netip.MustParsePrefix(vipCIDR).Contains(svc.VIP) {
		t.Fatalf("VIP %s is outside %s", svc.VIP, vipCIDR)
	}
	for _, in := range svc.Instances {
		want := c.host(hostA).Addr()
		if in.ID == "b" {
			want = c.host(hostB).Addr()
		}
		if in.Address != want || in.Host != want {
			t.Errorf("instance %s at %s from host %s, want both %s", in.ID, in.Address, in.Host, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testenv.Eventually(t, 10*time.Second, func() bool {
		m, err := c.query(ctx, hostC, "echo.netsel.", dns.TypeA)
		return err == nil && len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == svc.VIP.String()
	}, "host C's DNS does not answer echo.netsel. A %s", svc.VIP)
	httpPort := port(svc, "http")
	wantSRV := []string{c.host(hostA).Addr().String(), c.host(hostB).Addr().String()}
	testenv.Eventually(t, 10*time.Second, func() bool {
		targets, err := c.srvTargets(ctx, hostC, "_http._tcp.echo.netsel.")
		if err != nil || len(targets) != 2 {
			return false
		}
		var hosts []string
		for _, tg := range targets {
			h, _, _ := strings.Cut(tg, ":")
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		return slices.Equal(hosts, wantSRV)
	}, "host C's DNS does not answer SRV with the instances on A and B")

	for _, path := range []struct {
		name string
		get  func() (string, error)
	}{
		{"HTTP proxy", func() (string, error) { return c.httpVia(ctx, hostC, "echo") }},
		{"VIP proxy", func() (string, error) { return c.httpViaVIP(ctx, hostC, httpPort) }},
	} {
		seen := map[string]int{}
		for range 20 {
			body, err := path.get()
			if err != nil {
				t.Fatalf("%s on host C: %v", path.name, err)
			}
			seen[answeredBy(body)]++
		}
		if seen["a"] == 0 || seen["b"] == 0 {
			t.Errorf("%s on host C: answers by instance %v, want both a and b", path.name, seen)
		}
	}

	out, err := c.host(hostC).Command(ctx, bin.client, "-registrar", c.registrarURL(hostC)).CombinedOutput()
	if err != nil {
		t.Errorf("examples/client on host C: %v\n%s", err, out)
	}

	// Another host's loopback never enters the catalog.
	status, body := c.post(ctx, hostC, "/v1/services/echo/instances", `{"address":"127.0.0.1","port":8080}`)
	if status != 400 || !strings.Contains(body, `"address"`) {
		t.Errorf("registering 127.0.0.1 at a many-host registrar: %d %s, want 400 naming address", status, body)
	}
}
