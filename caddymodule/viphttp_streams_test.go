package caddymodule

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestVIPHTTPStreamsPerConn: an h2c client of an http port — whose
// instances are reached over HTTP/1.1, a connection per request in
// flight — gets vipRequestsPerConn requests in flight per client
// connection, the rest waiting, so that 20 streams on one connection
// cannot hold 20 instance connections (a client would hold a descriptor
// per stream beyond every connection limit). Before, all 20 went at once.
func TestVIPHTTPStreamsPerConn(t *testing.T) {
	e := newEnv(t)
	var inflight, most, arrived atomic.Int64
	release := make(chan struct{})
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if r.URL.Path == "/hold" {
			arrived.Add(1)
			<-release
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	vip, port := vipPort(t)
	e.service("web", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolHTTP})
	e.instance("web", "a", ln.Addr().String(), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		Protocols: &protos, HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true}}}
	url := "http://" + hostPort(vip, port)
	testenv.Eventually(t, 10*time.Second, func() bool {
		res, err := client.Get(url + "/ready")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == http.StatusOK
	}, "VIP %s never served", url)

	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := client.Get(url + "/hold"); err == nil {
				res.Body.Close()
			}
		}()
	}
	// Give the streams a bounded chance to reach the instance together.
	deadline := time.Now().Add(time.Second)
	for arrived.Load() <= vipRequestsPerConn && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if m := most.Load(); m > vipRequestsPerConn {
		t.Errorf("%d requests of one client connection were at the instance at once, want at most %d", m, vipRequestsPerConn)
	}
	if n := arrived.Load(); n != 20 {
		t.Errorf("%d of 20 requests reached the instance", n)
	}
}
