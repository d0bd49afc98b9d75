package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // calls compressed with gzip are passed too
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A grpc port's VIP is served by a gRPC server (grpc-go) rather than
// net/http: every call, whatever its service and method, is passed to an
// instance over a gRPC connection kept per instance, its messages undecoded
// both ways, its metadata, headers, trailers and status as the instance
// sent them, and a call is never retried once its first message may have
// gone. (Calls reach the instance as application/grpc+proto, whatever
// codec the client named: a call in another codec wants an h2c port.) Per call it costs the proxy about half the CPU of net/http's
// reverse proxy over HTTP/2 (see BenchmarkVIPGRPC). A grpc port takes
// gRPC only; an h2c port takes any HTTP/2 (or HTTP/1.1), gRPC included.

const (
	// vipMaxGRPCMessage bounds a message passed either way.
	vipMaxGRPCMessage = 4 << 20
	// vipMaxStreams bounds the calls in flight on one client connection.
	vipMaxStreams = 100
)

// grpcVIP proxies the calls of one grpc VIP listener.
type grpcVIP struct {
	vp *vipProxy
	l  *vipListener

	mu    sync.Mutex
	conns map[string]*upstreamConn // by instance address
	seen  *view                    // the view conns were last swept against
}

// upstreamConn is the gRPC connection to one instance.
type upstreamConn struct {
	cc    *grpc.ClientConn
	calls int  // in flight
	stale bool // no longer a candidate: closed once calls is 0
}

// serveGRPC serves gRPC on l until it is closed, then lets the calls in
// flight finish (for at most the idle timeout, when there is one) in the
// background, and closes the connections to instances.
func (vp *vipProxy) serveGRPC(l *vipListener) {
	defer close(l.done)
	g := &grpcVIP{vp: vp, l: l, conns: map[string]*upstreamConn{}}
	opts := []grpc.ServerOption{
		grpc.UnknownServiceHandler(g.handle),
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.MaxRecvMsgSize(vipMaxGRPCMessage),
		grpc.MaxSendMsgSize(vipMaxGRPCMessage),
		grpc.MaxConcurrentStreams(vipMaxStreams),
		grpc.MaxHeaderListSize(vipMaxHeaderBytes),
		grpc.ConnectionTimeout(vp.lim.header),
	}
	if vp.lim.idle > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: vp.lim.idle}))
	}
	srv := grpc.NewServer(opts...)
	err := srv.Serve(&admitListener{Listener: l.ln, vp: vp, l: l})
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, grpc.ErrServerStopped) {
		vp.logger.Error("VIP gRPC server stopped", zap.String("service", l.service), zap.Error(err))
	}
	go func() {
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		var timeout <-chan time.Time
		if vp.lim.idle > 0 {
			t := time.NewTimer(vp.lim.idle)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-stopped:
		case <-timeout:
			srv.Stop()
			<-stopped
		}
		g.closeAll()
	}()
}

// handle passes one call, of any method, to an instance.
func (g *grpcVIP) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "netsel: no method")
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	out := make(metadata.MD, len(md))
	var callOpts []grpc.CallOption
	for k, v := range md {
		switch {
		case k == ":authority" && len(v) > 0:
			callOpts = append(callOpts, grpc.CallAuthority(v[0]))
		case strings.HasPrefix(k, ":"):
		default:
			out[k] = v
		}
	}
	cs, release, err := g.open(metadata.NewOutgoingContext(ctx, out), method, callOpts)
	if err != nil {
		g.l.refused.Inc()
		if !errors.Is(err, errNoInstance) {
			g.vp.logger.Warn("VIP call failed", zap.String("service", g.l.service), zap.Int("port", g.l.port), zap.Error(err))
		}
		return status.Error(codes.Unavailable, unreachableMessage(g.l, err))
	}
	defer release()

	go func() { // client to instance
		for {
			f := new(rawFrame)
			if err := ss.RecvMsg(f); err != nil {
				if err == io.EOF {
					cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if cs.SendMsg(f) != nil {
				return // RecvMsg below gets the call's status
			}
		}
	}()
	if hd, err := cs.Header(); err == nil && len(hd) > 0 {
		if err := ss.SendHeader(hd); err != nil {
			return err
		}
	}
	for { // instance to client
		f := new(rawFrame)
		if err := cs.RecvMsg(f); err != nil {
			ss.SetTrailer(cs.Trailer())
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}

// passthrough describes any call: the proxy passes messages both ways.
var passthrough = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// open starts method on an instance, trying the next one while the
// instance cannot be reached (nothing sent), up to the proxy's tries.
func (g *grpcVIP) open(ctx context.Context, method string, opts []grpc.CallOption) (grpc.ClientStream, func(), error) {
	v := g.vp.app.view(g.l.service)
	var cs []candidate
	if v != nil && v.entry.Service != nil {
		if port, ok := portName(v.entry.Service, g.l.port); ok {
			cs = v.portCandidates(port)
		}
	}
	if len(cs) == 0 {
		return nil, nil, errNoInstance
	}
	f := g.vp.fwd
	first := f.start(cs, &g.l.rr)
	var errs []error
	for i := 0; i < len(cs) && i < f.tries; i++ {
		c := cs[(first+i)%len(cs)]
		cc, done, err := g.conn(v, cs, c.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		release := f.hold(c)
		s, err := cc.NewStream(ctx, passthrough, method, opts...)
		if err == nil {
			return s, func() { release(); done() }, nil
		}
		release()
		done()
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return nil, nil, err
		}
		errs = append(errs, err)
	}
	return nil, nil, &unreachableError{tried: len(errs), of: len(cs), err: errors.Join(errs...)}
}

// conn returns the connection to the instance at addr, counting a call on
// it until done is called. When v is a view not seen before, connections
// to instances no longer among its candidates cs are closed once idle.
func (g *grpcVIP) conn(v *view, cs []candidate, addr string) (*grpc.ClientConn, func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v != g.seen {
		g.seen = v
		g.sweep(cs)
	}
	u, ok := g.conns[addr]
	if !ok {
		cc, err := g.dialInstance(addr)
		if err != nil {
			return nil, nil, err
		}
		u = &upstreamConn{cc: cc}
		g.conns[addr] = u
	}
	u.calls++
	return u.cc, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if u.calls--; u.calls == 0 && u.stale {
			u.cc.Close()
		}
	}, nil
}

// sweep marks the connections to instances not in cs stale, and closes the
// idle ones. g.mu is held.
func (g *grpcVIP) sweep(cs []candidate) {
	keep := make(map[string]bool, len(cs))
	for _, c := range cs {
		keep[c.addr] = true
	}
	for addr, u := range g.conns {
		if keep[addr] {
			continue
		}
		delete(g.conns, addr)
		u.stale = true
		if u.calls == 0 {
			u.cc.Close()
		}
	}
}

func (g *grpcVIP) closeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(nil)
}

// dialInstance makes the gRPC connection to addr; it connects on its first
// call, and again after a failure with a backoff of at most a second.
func (g *grpcVIP) dialInstance(addr string) (*grpc.ClientConn, error) {
	d := net.Dialer{Timeout: g.vp.fwd.dialTimeout}
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err == nil {
				a := g.vp.app
				err = a.dialRefused(a.index.Snapshot(), a.policy.Load(), ap)
			}
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: g.vp.fwd.dialTimeout,
		}),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(vipMaxGRPCMessage),
			grpc.MaxCallSendMsgSize(vipMaxGRPCMessage),
		),
		grpc.WithIdleTimeout(vipUpstreamIdle),
		// The proxy retries a call itself only while nothing was sent;
		// grpc-go's retries would buffer every message sent.
		grpc.WithDisableRetry(),
	)
}

// rawFrame is a gRPC message passed on undecoded.
type rawFrame struct{ data mem.BufferSlice }

// rawCodec passes rawFrames: Unmarshal keeps the received buffers, Marshal
// hands them on to be sent (and freed).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*rawFrame)
	if !ok {
		return nil, fmt.Errorf("netsel: cannot pass a %T", v)
	}
	d := f.data
	f.data = nil
	return d, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return fmt.Errorf("netsel: cannot pass a %T", v)
	}
	data.Ref()
	f.data = data
	return nil
}
