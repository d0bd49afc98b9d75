package caddymodule

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// proxyReport returns the proxy reader's key, or nil.
func proxyReport(t *testing.T, cli *clientv3.Client) *catalog.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, ks.ReadersPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if r, err := catalog.DecodeReader(kv.Value); err == nil && r.Kind == catalog.ReaderProxy {
			return r
		}
	}
	return nil
}

// TestReaderReportsConnections: while an instance drains, the app's reader
// key says the revision it serves and counts, per instance, a connection
// held open through a VIP and an HTTP request in flight, until they end.
func TestReaderReportsConnections(t *testing.T) {
	e := newEnv(t)
	vip, port := vipPort(t)
	e.service("echo", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	e.instance("echo", "a", echoServer(t, "a:"), 1)

	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow")
	})}
	go slow.Serve(ln)
	t.Cleanup(func() { slow.Close() })
	e.service("web", netip.Addr{})
	e.instance("web", "w", ln.Addr().String(), 1)

	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, httpAddr: httpAddr, guard: true})
	addr := hostPort(vip, port)
	testenv.Eventually(t, 5*time.Second, func() bool { _, err := echoOnce(addr, "x"); return err == nil },
		"VIP %s never served", addr)
	testenv.Eventually(t, 5*time.Second, func() bool { return proxyReport(t, e.cli) != nil }, "the proxy wrote no reader key")

	conn := mustDial(t, addr) // held open to echo/a
	buf := make([]byte, 2)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/", nil)
		req.Host = "web.netsel"
		resp, err := newClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()

	b, _ := catalog.EncodeDrain(&catalog.Drain{Since: time.Now()})
	put, err := e.cli.Put(context.Background(), ks.DrainKey("echo", "a"), string(b))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Second, func() bool {
		r := proxyReport(t, e.cli)
		return r.Revision >= put.Header.Revision && r.Connections["echo/a"] == 1 && r.Connections["web/w"] == 1
	}, "the reader did not report the drain's revision %d with one connection to echo/a and one request to web/w: %+v",
		put.Header.Revision, proxyReport(t, e.cli))

	conn.Close()
	close(release)
	if err := <-answered; err != nil {
		t.Fatalf("the held request failed: %v", err)
	}
	testenv.Eventually(t, 3*time.Second, func() bool { return len(proxyReport(t, e.cli).Connections) == 0 },
		"the reader still reports connections after they ended: %+v", proxyReport(t, e.cli))
}
