//go:build linux

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// hanger is an HTTP backend on loopback that answers with its name, or,
// while hanging, accepts requests and never answers them.
type hanger struct {
	name    string
	addr    netip.AddrPort
	hanging atomic.Bool
}

func startHanger(t *testing.T, name string) *hanger {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hanger{name: name, addr: netip.MustParseAddrPort(ln.Addr().String())}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.hanging.Load() {
			<-r.Context().Done() // the client gave up, or the test ended
			return
		}
		io.WriteString(w, name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// TestHangingBackend runs the whole stack — registrar, CoreDNS with the
// netsel plugin, Caddy with the HTTP and VIP proxies — with two instances
// of one service, each with an HTTP check. One hangs (accepts, never
// answers): after its failures it is critical, and DNS SRV answers, both
// proxies and the API's default listing leave it out while the other stays;
// the API lists it with ?state=any, critical, with the check's output.
// When it answers again it comes back in all of them.
func TestHangingBackend(t *testing.T) {
	e := testenv.StartEtcd(t)
	n := startStack(t, vipRange(), []string{e.URL}, withRegistrar|withDNS|withProxies)
	good, bad := startHanger(t, "good"), startHanger(t, "bad")
	var vip netip.AddrPort
	for _, b := range []*hanger{good, bad} {
		a := call("POST", n.RegistrarURL+"/v1/services/app/instances", api.RegisterRequest{
			ID: b.name, Address: b.addr.Addr().String(), Port: int(b.addr.Port()), TTL: api.Duration(time.Minute),
			Checks: []api.Check{{Type: "http", Path: "/healthz", Interval: api.Duration(time.Second), Timeout: api.Duration(300 * time.Millisecond), Failures: 2}},
		})
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("register %s: %d %s %v", b.name, a.status, a.body, a.err)
		}
		var r api.RegisterResponse
		if err := json.Unmarshal([]byte(a.body), &r); err != nil {
			t.Fatal(err)
		}
		vip = netip.AddrPortFrom(r.VIP, uint16(r.Port))
	}
	both, goodOnly := map[string]bool{"good": true, "bad": true}, map[string]bool{"good": true}
	everywhere := func(want map[string]bool) string {
		if got, err := srvTargets(n.DNSAddr, "app"); err != nil || !sameSet(got, targets("app", keys(want)...)) {
			return fmt.Sprintf("DNS SRV %v, %v", got, err)
		}
		if got, err := seen(8, func() (string, error) { return viaProxy(n.HTTPAddr, "app.netsel") }); err != nil || !sameSet(got, want) {
			return fmt.Sprintf("HTTP proxy %v, %v", got, err)
		}
		if got, err := seen(8, func() (string, error) { return viaVIP(vip) }); err != nil || !sameSet(got, want) {
			return fmt.Sprintf("VIP proxy %v, %v", got, err)
		}
		if got := listed(t, n.RegistrarURL, ""); !sameSet(got, want) {
			return fmt.Sprintf("API listing %v", got)
		}
		return ""
	}
	var missing string
	testenv.Eventually(t, 20*time.Second, func() bool { missing = everywhere(both); return missing == "" },
		"both instances never showed everywhere: %s", said{&missing})

	bad.hanging.Store(true)
	hung := time.Now()
	testenv.Eventually(t, 20*time.Second, func() bool { missing = everywhere(goodOnly); return missing == "" },
		"the hanging instance was still served: %s", said{&missing})
	t.Logf("the hanging instance left DNS, both proxies and the listing %v after it hung", time.Since(hung).Round(10*time.Millisecond))
	// Two failed probes a second apart: the first may come right after it hung.
	if took := time.Since(hung); took < time.Second {
		t.Errorf("left after %v: before 2 failed probes a second apart", took)
	}
	all := listedViews(t, n.RegistrarURL, "?state=any")
	if v := all["bad"]; v.State != "critical" || v.Output == "" {
		t.Errorf("?state=any shows the hanging instance as %q %q, want critical with the probe's output", v.State, v.Output)
	} else {
		t.Logf("output: %s", v.Output)
	}
	if v := all["good"]; v.State != "passing" {
		t.Errorf("the good instance is %q", v.State)
	}

	bad.hanging.Store(false)
	testenv.Eventually(t, 20*time.Second, func() bool { missing = everywhere(both); return missing == "" },
		"the instance that answers again never came back everywhere: %s", said{&missing})
}

// said prints the string it points to when a test fails.
type said struct{ p *string }

func (s said) String() string { return *s.p }

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// listedViews returns the instances of app the registrar lists with query.
func listedViews(t *testing.T, base, query string) map[string]api.InstanceView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/services/app"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var v api.ServiceView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil
	}
	out := map[string]api.InstanceView{}
	for _, in := range v.Instances {
		out[in.ID] = in
	}
	return out
}

// listed returns the ids of the instances of app the registrar lists.
func listed(t *testing.T, base, query string) map[string]bool {
	m := map[string]bool{}
	for id := range listedViews(t, base, query) {
		m[id] = true
	}
	return m
}
