package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestRunnerGRPC: three grpc-go servers register a port that carries grpc
// through the client library; a grpc-go client of the runner's HTTP
// proxy, naming the service as its :authority, spreads its unary calls on
// one connection over all three (600 calls: a quarter is 4 standard
// deviations below the third each gets on average).
func TestRunnerGRPC(t *testing.T) {
	f := stackFlags(t, "127.82.0.0/16")
	runTestStack(t, f)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{"a", "b", "c"} {
		srv := testenv.StartGRPCEcho(t, id)
		if _, err := c.Register(ctx, client.Registration{Service: "rpc", ID: id, Address: "127.0.0.1", Port: srv.Port(),
			Protocols: map[string]string{"default": "grpc"}, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(f.http, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("rpc.netsel"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := testpb.NewTestServiceClient(conn)
	seen := map[string]int{}
	testenv.Eventually(t, 10*time.Second, func() bool {
		res, err := rpc.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err == nil {
			seen[res.GetServerId()]++
		}
		return len(seen) == 3
	}, "the proxy never reached all three instances: %v", seen)
	clear(seen)
	for range 600 {
		res, err := rpc.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		seen[res.GetServerId()]++
	}
	for _, id := range []string{"a", "b", "c"} {
		if seen[id] < 600/4 {
			t.Errorf("instance %s answered %d of 600 calls, want at least a quarter: %v", id, seen[id], seen)
		}
	}
}
