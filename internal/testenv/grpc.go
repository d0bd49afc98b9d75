package testenv

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCEcho is a real gRPC server (grpc-go) serving grpc.testing.TestService
// on a loopback port: UnaryCall answers with ServerId set to the server's
// id, StreamingOutputCall streams one response per ResponseParameters,
// each a payload of the size asked whose bytes are the server's id, repeated.
// Both end with the request's ResponseStatus when it is not OK (after the
// streamed responses), and UnaryCall sends the request's metadata
// "x-echo-trailer" back as a trailer.
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

func (s *echoService) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.e.Calls.Add(1)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-echo-trailer")) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", md.Get("x-echo-trailer")[0]))
	}
	if err := echoStatus(in.GetResponseStatus()); err != nil {
		return nil, err
	}
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
	return echoStatus(in.GetResponseStatus())
}

// echoStatus returns the error of status st, or nil when it is OK.
func echoStatus(st *testpb.EchoStatus) error {
	if st.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(st.GetCode()), st.GetMessage())
}
