package checks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/netsel/netsel/catalog"
)

func httpTarget(t *testing.T, srv *httptest.Server, path string, timeout time.Duration) *target {
	t.Helper()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	return &target{
		check: catalog.Check{Type: catalog.CheckHTTP, Path: path, Interval: time.Second, Timeout: timeout},
		addr:  ap, url: "http://" + ap.String() + path,
	}
}

func TestProbeHTTP(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 1<<20)))
		case "/hang":
			<-r.Context().Done()
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	p := newProber(nil)
	for _, tc := range []struct {
		path   string
		status int
		output string
	}{
		{"/ok", pass, "200 OK Output: fine"},
		{"/busy", warn, "429 Too Many Requests"},
		{"/moved", fail, "302 Found"}, // not followed
		{"/error", fail, "500 Internal Server Error"},
		{"/big", pass, "200 OK"},
		{"/hang", fail, "no answer within the 200ms timeout"},
	} {
		before := hits.Load()
		start := time.Now()
		r := p.probe(context.Background(), httpTarget(t, srv, tc.path, 200*time.Millisecond))
		r.output = clip(r.output)
		if r.status != tc.status || !strings.Contains(r.output, tc.output) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, r.status, r.output, tc.status, tc.output)
		}
		if len(r.output) > catalog.MaxCheckOutput {
			t.Errorf("GET %s: output of %d bytes", tc.path, len(r.output))
		}
		if n := hits.Load() - before; n != 1 {
			t.Errorf("GET %s: %d requests, want 1 (no redirect followed)", tc.path, n)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET %s took %v with a 200ms timeout", tc.path, d)
		}
	}
}

// TestProbePolicy: a probe never dials an address the policy refuses.
func TestProbePolicy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	refuse := func(a netip.AddrPort) error {
		if a == ap {
			return errors.New("reserved")
		}
		return nil
	}
	for _, typ := range []string{catalog.CheckTCP, catalog.CheckHTTP, catalog.CheckGRPC} {
		tg := &target{check: catalog.Check{Type: typ, Path: "/", Timeout: 300 * time.Millisecond}, addr: ap, url: "http://" + ap.String() + "/"}
		r := newProber(refuse).probe(context.Background(), tg)
		if r.status != fail || !strings.Contains(r.output, "refused by the address policy") {
			t.Errorf("%s probe of a refused address: %d %q", typ, r.status, r.output)
		}
	}
	if ok := newProber(nil).probe(context.Background(), &target{check: catalog.Check{Type: catalog.CheckTCP, Timeout: time.Second}, addr: ap}); ok.status != pass {
		t.Errorf("tcp probe of an allowed listener: %d %q", ok.status, ok.output)
	}
	for deadline := time.Now().Add(5 * time.Second); accepted.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the listener accepted %d connections, want only the allowed probe's", n)
	}
}

func TestProbeGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	ap := netip.MustParseAddrPort(ln.Addr().String())
	p := newProber(nil)
	for _, tc := range []struct {
		service string
		status  int
	}{{"", pass}, {"db", fail}, {"unknown", fail}} {
		r := p.probe(context.Background(), &target{check: catalog.Check{Type: catalog.CheckGRPC, Service: tc.service, Timeout: time.Second}, addr: ap})
		if r.status != tc.status {
			t.Errorf("grpc service %q: %d %q, want %d", tc.service, r.status, r.output, tc.status)
		}
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	ap2 := netip.MustParseAddrPort(ln2.Addr().String())
	ln2.Close()
	start := time.Now()
	if r := p.probe(context.Background(), &target{check: catalog.Check{Type: catalog.CheckGRPC, Timeout: 300 * time.Millisecond}, addr: ap2}); r.status != fail {
		t.Errorf("grpc probe of a closed port: %d %q", r.status, r.output)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("grpc probe of a closed port took %v", d)
	}
}
