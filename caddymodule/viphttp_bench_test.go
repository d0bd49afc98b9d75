package caddymodule

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// BenchmarkVIPGRPC runs the same gRPC calls, 16 in flight on one client
// connection, direct to one GRPCEcho, through a grpc VIP port to three
// (vip) and through an h2c VIP port to the same three (vip-h2c: net/http's
// reverse proxy), side by side: the VIP's cost per call is the ratio of
// their calls/s; cpu-µs/call is the CPU of the whole process (client,
// proxy and servers) per call.
//
//	go test ./caddymodule -run '^$' -bench BenchmarkVIPGRPC -count 6
func BenchmarkVIPGRPC(b *testing.B) {
	e := testenv.StartEtcd(b)
	ctx := context.Background()
	// Two services on the same three instances: "bench" on a grpc port,
	// "benchh2c" on an h2c port (net/http's reverse proxy).
	var echos []*testenv.GRPCEcho
	for i := range 3 {
		echos = append(echos, testenv.StartGRPCEcho(b, "i"+strconv.Itoa(i)))
	}
	vipAddrs := map[string]string{}
	for name, proto := range map[string]string{"bench": catalog.ProtocolGRPC, "benchh2c": catalog.ProtocolH2C} {
		vip := randomVIP()
		ln, err := net.Listen("tcp", net.JoinHostPort(vip.String(), "0"))
		if err != nil {
			b.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		vipAddrs[proto] = hostPort(vip, port)
		svc, _ := catalog.EncodeService(&catalog.Service{Name: name, VIP: vip, Created: time.Now(),
			Ports: []catalog.Port{{Name: "default", Port: port, Protocol: proto}}})
		e.Client.Put(ctx, ks.ServiceKey(name), string(svc))
		for _, g := range echos {
			in, _ := catalog.EncodeInstance(&catalog.Instance{ID: g.ID, Service: name,
				Address: netip.MustParseAddrPort(g.Addr).Addr(), Port: g.Port(), Weight: 1, Registered: time.Now()})
			e.Client.Put(ctx, ks.InstanceKey(name, g.ID), string(in))
		}
	}
	testenv.StartCaddy(b, config{etcdURL: e.URL, vip: true}.JSON())
	clients := []struct {
		name string
		c    testpb.TestServiceClient
	}{
		{"direct", grpcClient(b, echos[0].Addr)},
		{"vip", grpcClient(b, vipAddrs[catalog.ProtocolGRPC])},
		{"vip-h2c", grpcClient(b, vipAddrs[catalog.ProtocolH2C])},
	}
	for _, cl := range clients[1:] {
		testenv.Eventually(b, 10*time.Second, func() bool {
			_, err := unary(cl.c)
			return err == nil
		}, "no call through the %s VIP succeeded", cl.name)
	}

	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}}
	sreq := &testpb.StreamingOutputCallRequest{}
	for range 10 {
		sreq.ResponseParameters = append(sreq.ResponseParameters, &testpb.ResponseParameters{Size: 1024})
	}
	par := max(1, 16/runtime.GOMAXPROCS(0))
	for _, cl := range clients {
		b.Run("unary/"+cl.name, func(b *testing.B) {
			b.SetParallelism(par)
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cl.c.UnaryCall(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
	for _, cl := range clients {
		b.Run("stream10x1KiB/"+cl.name, func(b *testing.B) {
			b.SetParallelism(par)
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					st, err := cl.c.StreamingOutputCall(ctx, sreq)
					if err != nil {
						b.Error(err)
						return
					}
					for {
						if _, err := st.Recv(); err == io.EOF {
							break
						} else if err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used: client,
// proxy and servers all run in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
