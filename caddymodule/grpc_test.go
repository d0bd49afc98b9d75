package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// authorityClient is a grpc-go client of the TestService at addr, asking for
// authority (the HTTP proxy routes by it), once a call is no longer told
// the proxy has not read the catalog yet.
func authorityClient(t *testing.T, addr, authority string) testpb.TestServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := testpb.NewTestServiceClient(conn)
	testenv.Eventually(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		return status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not loaded")
	}, "%s never past the proxy's start", addr)
	return c
}

// grpcSpread makes n unary calls, 8 at a time, and counts them by the
// server that answered; a failed call fails the test.
func grpcSpread(t *testing.T, c testpb.TestServiceClient, n int) map[string]int {
	t.Helper()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := c.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				seen["error: "+err.Error()]++
				return
			}
			seen[res.GetServerId()]++
		}()
	}
	wg.Wait()
	return seen
}

// checkStream asks for a server stream of growing payloads and checks
// every message arrives whole, in order.
func checkStream(t *testing.T, c testpb.TestServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var params []*testpb.ResponseParameters
	for i := range 100 {
		params = append(params, &testpb.ResponseParameters{Size: int32(1024 + i*640)})
	}
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var who string
	for i, p := range params {
		res, err := st.Recv()
		if err != nil {
			t.Fatalf("stream message %d: %v", i, err)
		}
		body := res.GetPayload().GetBody()
		if i == 0 {
			who = string(body[:1])
		}
		if len(body) != int(p.Size) || body[0] != who[0] {
			t.Fatalf("stream message %d: %d bytes from %q, want %d from %q", i, len(body), body[:1], p.Size, who)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after the stream: %v, want its end (EOF)", err)
	}
}

// TestGRPCThroughHTTPProxy: a real grpc-go client reaches a service whose
// port carries grpc through the HTTP proxy by :authority; its unary calls
// on one connection spread over the three instances, each getting at least
// a quarter (instances are picked at random by weight: over 900 calls a
// quarter is 5 standard deviations below the mean), and a server stream
// comes back whole. Before the netsel
// transport, the proxy spoke HTTP/1.1 to the instances: every call failed.
func TestGRPCThroughHTTPProxy(t *testing.T) {
	e := newEnv(t)
	e.service("rpc", randomVIP(), catalog.Port{Name: catalog.DefaultPortName, Port: 9000, Protocol: catalog.ProtocolGRPC})
	for _, id := range []string{"a", "b", "c"} {
		e.instance("rpc", id, testenv.StartGRPCEcho(t, id).Addr, 1)
	}
	httpAddr := testenv.FreeAddr(t)
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true})

	c := authorityClient(t, httpAddr, "rpc.netsel")
	seen := grpcSpread(t, c, 900)
	for _, id := range []string{"a", "b", "c"} {
		if seen[id] < 900/4 {
			t.Errorf("instance %s answered %d of 900 calls, want at least a quarter: %v", id, seen[id], seen)
		}
	}
	checkStream(t, c)
}

// TestGRPCUndeclaredPort: a gRPC call to a service that never declared
// its port's protocol (tcp) still goes over HTTP/2: gRPC has no other.
func TestGRPCUndeclaredPort(t *testing.T) {
	e := newEnv(t)
	e.service("rpc", randomVIP())
	e.instance("rpc", "a", testenv.StartGRPCEcho(t, "a").Addr, 1)
	httpAddr := testenv.FreeAddr(t)
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true})
	if seen := grpcSpread(t, authorityClient(t, httpAddr, "rpc.netsel"), 20); seen["a"] != 20 {
		t.Errorf("calls answered %v, want all 20 by a", seen)
	}
}

// badProtocolServer answers HTTP/1.1 with the path as body, except that a
// request for /bad gets bytes that are no HTTP response.
func badProtocolServer(t *testing.T) string {
	t.Helper()
	return testenv.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/bad" {
				c.Write([]byte("SSH-2.0-not-http\r\n\r\n"))
				return
			}
			res := &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1,
				Body: http.NoBody, Header: http.Header{"X-Path": {req.URL.Path}}}
			var b bytes.Buffer
			res.Write(&b)
			c.Write(b.Bytes())
		}
	}).String()
}

// TestProtocolFailureKeepsInstance: an instance that answers one request
// with something that is not HTTP fails that request — 502 naming the
// service and the instance — but stays up for every other request. Before,
// Caddy's passive health check took it for fail_duration (10 s), and every
// client of the service got 502 "could not be reached".
func TestProtocolFailureKeepsInstance(t *testing.T) {
	e := newEnv(t)
	e.service("web", randomVIP(), catalog.Port{Name: catalog.DefaultPortName, Port: 80, Protocol: catalog.ProtocolHTTP})
	e.instance("web", "a", badProtocolServer(t), 1)
	httpAddr := testenv.FreeAddr(t)
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true})
	client := newClient()
	waitServed(t, client, httpAddr, "web.netsel")

	do := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+path, nil)
		req.Host = "web.netsel"
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}
	for i := range 3 {
		code, body := do("/bad")
		if code != http.StatusBadGateway || !strings.Contains(body, `service "web"`) {
			t.Errorf("/bad #%d: %d %q, want 502 naming service web", i, code, body)
		}
		if code, body := do(fmt.Sprintf("/good%d", i)); code != http.StatusOK {
			t.Errorf("/good%d right after /bad: %d %q, want 200: the instance was taken for everyone", i, code, body)
		}
	}
}

// TestGRPCToNonGRPCInstance: a gRPC call whose instance turns out to speak
// no HTTP/2 fails UNAVAILABLE with a message naming the service, and the
// instance stays up for the requests it can serve.
func TestGRPCToNonGRPCInstance(t *testing.T) {
	e := newEnv(t)
	e.service("rpc", randomVIP(), catalog.Port{Name: catalog.DefaultPortName, Port: 9000, Protocol: catalog.ProtocolHTTP})
	e.instance("rpc", "a", badProtocolServer(t), 1)
	httpAddr := testenv.FreeAddr(t)
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: httpAddr, guard: true})
	client := newClient()
	waitServed(t, client, httpAddr, "rpc.netsel")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := authorityClient(t, httpAddr, "rpc.netsel").UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), `service "rpc"`) {
		t.Errorf("call: %v, want UNAVAILABLE naming service rpc", err)
	}
	if code, body := get(t, client, httpAddr, "rpc.netsel"); code != http.StatusOK {
		t.Errorf("HTTP/1.1 request after the failed call: %d %q, want 200", code, body)
	}
}

// TestRepoCaddyfileGRPC: the repository's Caddyfile, as it is but for its
// etcd endpoint and listen port, takes gRPC clients (h2c) and proxies them
// to a grpc service by :authority.
func TestRepoCaddyfileGRPC(t *testing.T) {
	b, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.service("rpc", randomVIP(), catalog.Port{Name: catalog.DefaultPortName, Port: 9000, Protocol: catalog.ProtocolGRPC})
	for _, id := range []string{"a", "b"} {
		e.instance("rpc", id, testenv.StartGRPCEcho(t, id).Addr, 1)
	}
	httpAddr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(httpAddr)
	cf := strings.NewReplacer("http://127.0.0.1:2379", e.etcd.URL, "http://:8081", "http://:"+port).Replace(string(b))
	out, err := adapt(t, cf)
	if err != nil {
		t.Fatalf("adapt the repository's Caddyfile: %v", err)
	}
	testenv.StartCaddy(t, []byte(out))
	seen := grpcSpread(t, authorityClient(t, httpAddr, "rpc.netsel"), 40)
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != 40 {
		t.Errorf("calls answered %v, want all 40 by a and b", seen)
	}
}
