package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// grpcService registers service name with a grpc port on a fresh VIP, one
// instance per id (a GRPCEcho), plus the dead addresses given, and returns
// the VIP:port.
func grpcService(t *testing.T, e *env, name string, ids []string, dead ...string) (string, []*testenv.GRPCEcho) {
	t.Helper()
	return grpcServiceOn(t, e, name, catalog.ProtocolGRPC, ids, dead...)
}

// grpcServiceOn is grpcService with a port of protocol proto.
func grpcServiceOn(t *testing.T, e *env, name, proto string, ids []string, dead ...string) (string, []*testenv.GRPCEcho) {
	t.Helper()
	vip, port := vipPort(t)
	e.service(name, vip, catalog.Port{Name: "default", Port: port, Protocol: proto})
	var echos []*testenv.GRPCEcho
	for _, id := range ids {
		g := testenv.StartGRPCEcho(t, id)
		echos = append(echos, g)
		e.instance(name, id, g.Addr, 1)
	}
	for i, d := range dead {
		e.instance(name, fmt.Sprintf("dead%d", i), d, 1)
	}
	return hostPort(vip, port), echos
}

// grpcClient is a real grpc-go client of addr; one connection.
func grpcClient(t testing.TB, addr string) testpb.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func unary(c testpb.TestServiceClient) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	return r.GetServerId(), err
}

// waitGRPC waits until a unary call through addr succeeds.
func waitGRPC(t *testing.T, c testpb.TestServiceClient, addr string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := unary(c)
		return err == nil
	}, "no gRPC call through %s succeeded", addr)
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string { return "127.0.0.1:" + itoa(freePort(t, "127.0.0.1")) }

func TestVIPGRPCSpreadsCalls(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpc3", []string{"a", "b", "c"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)

	seen := map[string]int{}
	for range 300 {
		id, err := unary(c)
		if err != nil {
			t.Fatalf("unary call through %s: %v", addr, err)
		}
		seen[id]++
	}
	for _, id := range []string{"a", "b", "c"} {
		if seen[id] < 75 {
			t.Errorf("300 calls on one connection gave %v; want each instance >= 25%%", seen)
			break
		}
	}
}

func TestVIPGRPCStreamsAndStatus(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpcs", []string{"x", "y"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// 100 messages of 1 KiB .. 64 KiB, intact and in order.
	var params []*testpb.ResponseParameters
	for i := range 100 {
		params = append(params, &testpb.ResponseParameters{Size: int32(1024 + i*63*1024/99)})
	}
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	var id byte
	for i, p := range params {
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		body := m.GetPayload().GetBody()
		if id == 0 && len(body) > 0 {
			id = body[0]
		}
		if len(body) != int(p.Size) || !bytes.Equal(body, bytes.Repeat([]byte{id}, len(body))) {
			t.Fatalf("message %d: %d bytes, want %d of %q", i, len(body), p.Size, id)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}

	// A call compressed with gzip passes (the proxy decompresses it).
	if r, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: bytes.Repeat([]byte("z"), 4096)}},
		grpc.UseCompressor(gzip.Name)); err != nil || len(r.GetPayload().GetBody()) != 4096 {
		t.Fatalf("gzip call: %d bytes back, %v", len(r.GetPayload().GetBody()), err)
	}

	// A stream ending in an error keeps its messages, status and message.
	st, err = c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: params[:3],
		ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "stream says no"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.Recv(); err != nil {
			t.Fatalf("message %d of a failing stream: %v", i, err)
		}
	}
	if _, err := st.Recv(); status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "stream says no" {
		t.Errorf("failing stream ended with %v; want FailedPrecondition \"stream says no\"", err)
	}

	// A unary error (trailers-only) keeps its status and trailers.
	var trailer metadata.MD
	mctx := metadata.AppendToOutgoingContext(ctx, "x-echo-trailer", "kept")
	_, err = c.UnaryCall(mctx, &testpb.SimpleRequest{
		ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "unary says no"},
	}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "unary says no" {
		t.Errorf("failing unary call: %v; want PermissionDenied \"unary says no\"", err)
	}
	if got := trailer.Get("x-echo-trailer"); len(got) != 1 || got[0] != "kept" {
		t.Errorf("trailer of a failing call: %v, want x-echo-trailer: kept", trailer)
	}
}

func TestVIPGRPCRetriesDeadInstance(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpcd", []string{"a", "b"}, deadAddr(t))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)
	seen := map[string]int{}
	for i := range 60 {
		id, err := unary(c)
		if err != nil {
			t.Fatalf("call %d with 2 of 3 instances live: %v", i, err)
		}
		seen[id]++
	}
	if seen["a"] < 20 || seen["b"] < 20 {
		t.Errorf("60 calls gave %v; want both live instances used", seen)
	}
}

func TestVIPGRPCNoInstanceUnavailable(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpcnone", nil, deadAddr(t), deadAddr(t))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := grpcClient(t, addr)
	var err error
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err = unary(c)
		return status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), `"grpcnone"`)
	}, "call with every instance down")
	t.Logf("call with every instance down: %v", err)
}

// Closing a per-request listener (its service deleted) lets a stream in
// flight finish intact, and its connection is uncounted once closed.
func TestVIPGRPCListenerCloseDrains(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpcgone", []string{"a"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	app := activeApp(t)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	waitGRPC(t, c, addr)

	// 64 × 64 KiB: more than flow control lets through unread.
	var params []*testpb.ResponseParameters
	for range 64 {
		params = append(params, &testpb.ResponseParameters{Size: 64 << 10})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	e.del(ks.InstanceKey("grpcgone", "a"))
	e.del(ks.ServiceKey("grpcgone"))
	testenv.Eventually(t, 2*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "listener of a deleted service still open")
	for i := 1; i < len(params); i++ {
		m, err := st.Recv()
		if err != nil || len(m.GetPayload().GetBody()) != 64<<10 {
			t.Fatalf("message %d after the listener closed: %d bytes, %v", i, len(m.GetPayload().GetBody()), err)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	cc.Close()
	testenv.Eventually(t, 5*time.Second, func() bool { return app.vips.conns.Load() == 0 },
		"%d VIP connections still counted after the client closed", app.vips.conns.Load())
}

// An h2c port carries gRPC too (through net/http's reverse proxy): calls
// spread, a failing call keeps its status and trailers, and with no
// instance reachable the call is UNAVAILABLE naming the service.
func TestVIPH2CCarriesGRPC(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcServiceOn(t, e, "h2cgrpc", catalog.ProtocolH2C, []string{"a", "b", "c"})
	down, _ := grpcServiceOn(t, e, "h2cdown", catalog.ProtocolH2C, nil, deadAddr(t))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)
	seen := map[string]int{}
	for range 90 {
		id, err := unary(c)
		if err != nil {
			t.Fatal(err)
		}
		seen[id]++
	}
	if seen["a"] < 22 || seen["b"] < 22 || seen["c"] < 22 {
		t.Errorf("90 calls gave %v; want each instance >= 25%%", seen)
	}
	var trailer metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-echo-trailer", "kept")
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{
		ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "unary says no"},
	}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "unary says no" || len(trailer.Get("x-echo-trailer")) != 1 {
		t.Errorf("failing call: %v, trailer %v; want PermissionDenied \"unary says no\" and x-echo-trailer", err, trailer)
	}
	dc := grpcClient(t, down)
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err = unary(dc)
		return status.Code(err) == codes.Unavailable && strings.Contains(status.Convert(err).Message(), `"h2cdown"`)
	}, "call with every instance down: %v", err)
}

// A client that never finishes the HTTP/2 handshake on a grpc port is cut
// after header_timeout; others are served meanwhile.
func TestVIPGRPCSlowHandshakeCut(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpcslow", []string{"a"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"header_timeout": "500ms"}})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)
	slow := mustDial(t, addr)
	io.WriteString(slow, "PRI * HTTP/2.0\r\n") // half a preface
	start := time.Now()
	for range 5 {
		if _, err := unary(c); err != nil {
			t.Fatal(err)
		}
	}
	slow.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.ReadAll(slow)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a client that never finished the handshake still connected after %v", time.Since(start))
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("slow client cut after %v; want about 500ms", d)
	}
}

// With least_conn, a call goes to the instance with the fewest calls in
// flight: while a stream holds one instance, unary calls go to the other.
func TestVIPGRPCLeastConnPerCall(t *testing.T) {
	e := newEnv(t)
	addr, _ := grpcService(t, e, "grpclc", []string{"a", "b"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"policy": "least_conn"}})
	c := grpcClient(t, addr)
	waitGRPC(t, c, addr)

	// 64 × 64 KiB, read one: the call stays in flight.
	var params []*testpb.ResponseParameters
	for range 64 {
		params = append(params, &testpb.ResponseParameters{Size: 64 << 10})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	busy := string(m.GetPayload().GetBody()[:1])
	for range 10 {
		id, err := unary(c)
		if err != nil {
			t.Fatal(err)
		}
		if id == busy {
			t.Fatalf("a unary call went to %s, which holds a stream, with the other idle", id)
		}
	}
	cancel()
}
