package testenv

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// GRPCEcho is a real gRPC server (grpc-go) serving grpc.testing.TestService
// on a loopback port: UnaryCall answers with ServerId set to the server's
// id, StreamingOutputCall streams one response per ResponseParameters,
// each a payload of the size asked whose bytes are the server's id, repeated.
type GRPCEcho struct {
	ID    string
	Addr  string // host:port
	Calls atomic.Int64

	srv *grpc.Server
}

// StartGRPCEcho starts a GRPCEcho named id on 127.0.0.1; it stops when t
// ends.
func StartGRPCEcho(t testing.TB, id string) *GRPCEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("grpc echo %s: %v", id, err)
	}
	e := &GRPCEcho{ID: id, Addr: ln.Addr().String(), srv: grpc.NewServer()}
	testpb.RegisterTestServiceServer(e.srv, &echoService{e: e})
	go e.srv.Serve(ln)
	t.Cleanup(e.srv.Stop)
	return e
}

// Port returns the server's port.
func (e *GRPCEcho) Port() int {
	_, p, _ := net.SplitHostPort(e.Addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

type echoService struct {
	testpb.UnimplementedTestServiceServer
	e *GRPCEcho
}

func (s *echoService) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.e.Calls.Add(1)
	return &testpb.SimpleResponse{ServerId: s.e.ID, Payload: in.GetPayload()}, nil
}

func (s *echoService) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.e.Calls.Add(1)
	for _, p := range in.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		for i := range body {
			body[i] = s.e.ID[i%len(s.e.ID)]
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}
