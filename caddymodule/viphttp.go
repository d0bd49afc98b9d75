package caddymodule

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
)

// An http or h2c VIP port serves HTTP/1.1 and HTTP/2 cleartext (prior
// knowledge, as gRPC clients speak it) and reaches instances over HTTP/1.1
// (http) or HTTP/2 cleartext (h2c), on connections pooled per instance,
// through httputil.ReverseProxy. It stays nearly transparent: Host
// (:authority), paths, headers, bodies and trailers pass as sent, less the
// hop-by-hop headers; it adds X-Forwarded-For (the client's address
// appended), X-Forwarded-Host and X-Forwarded-Proto, since the instance
// sees the proxy's address.

// httpVIP proxies the requests of one per-request VIP listener.
type httpVIP struct {
	vp     *vipProxy
	l      *vipListener
	tr     *http.Transport
	dialer net.Dialer
}

// serveHTTP serves HTTP on l until it is closed, then lets the requests in
// flight finish (for at most the idle timeout, when there is one) in the
// background, and closes the idle connections to instances.
func (vp *vipProxy) serveHTTP(l *vipListener, port catalog.Port) {
	defer close(l.done)
	h := &httpVIP{vp: vp, l: l, dialer: net.Dialer{Timeout: vp.fwd.dialTimeout}}
	h.tr = &http.Transport{
		DialContext:            h.dial,
		Protocols:              upstreamProtocols(port),
		DisableCompression:     true, // pass Accept-Encoding and bodies as they are
		MaxIdleConns:           vipMaxIdlePerInstance,
		MaxIdleConnsPerHost:    vipMaxIdlePerInstance,
		IdleConnTimeout:        vipUpstreamIdle,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: vipMaxHeaderBytes,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       h.rewrite,
		Transport:     h,
		FlushInterval: -1, // streams flow as they come
		BufferPool:    new(bufferPool),
		ErrorHandler:  h.fail,
		ErrorLog:      zap.NewStdLog(vp.logger.Named("http")),
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           rp,
		Protocols:         &protos,
		ReadHeaderTimeout: vp.lim.header,
		IdleTimeout:       vp.lim.idle,
		MaxHeaderBytes:    vipMaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(vp.logger.Named("http").WithOptions(zap.IncreaseLevel(zap.ErrorLevel))),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: vipMaxStreams},
	}
	if !port.HTTP2() {
		// Each request in flight to an http port's instance holds an
		// HTTP/1.1 connection of its own: a few at a time per client
		// connection (more wait), so that an HTTP/2 client connection
		// costs about the descriptors of a proxied TCP connection, not
		// one per stream.
		srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connSlotsKey{}, make(chan struct{}, vipRequestsPerConn))
		}
		srv.Handler = oneOfConnSlots(rp)
	}
	err := srv.Serve(&admitListener{Listener: l.ln, vp: vp, l: l, buffered: true})
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		vp.logger.Error("VIP HTTP server stopped", zap.String("service", l.service), zap.Error(err))
	}
	go func() {
		ctx := context.Background()
		if vp.lim.idle > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, vp.lim.idle)
			defer cancel()
		}
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		h.tr.CloseIdleConnections()
	}()
}

// upstreamProtocols returns what the transport to p's instances speaks.
func upstreamProtocols(p catalog.Port) *http.Protocols {
	var protos http.Protocols
	if p.HTTP2() {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	return &protos
}

// rewrite makes the request to an instance; RoundTrip sets its address.
func (h *httpVIP) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = pr.In.Host
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
}

// RoundTrip sends req to an instance of the listener's service, trying the
// next instance while a dial fails, up to the proxy's tries. The instance
// counts the request as open until its response body is closed.
func (h *httpVIP) RoundTrip(req *http.Request) (*http.Response, error) {
	var cs []candidate
	if v := h.vp.app.view(h.l.service); v != nil && v.entry.Service != nil {
		if port, ok := portName(v.entry.Service, h.l.port); ok {
			cs = v.portCandidates(port)
		}
	}
	if len(cs) == 0 {
		return nil, errNoInstance
	}
	f := h.vp.fwd
	first := f.start(cs, &h.l.rr)
	body := req.Body
	var rb *retryBody
	if body != nil && body != http.NoBody {
		rb = &retryBody{rc: body}
		body = rb
	}
	var errs []error
	for i := 0; i < len(cs) && i < f.tries; i++ {
		c := cs[(first+i)%len(cs)]
		out := req.WithContext(req.Context()) // a shallow copy
		u := *req.URL
		u.Host = c.addr
		out.URL, out.Body = &u, body
		release := f.hold(c)
		resp, err := h.tr.RoundTrip(out)
		if err == nil {
			resp.Body = &releaseBody{ReadCloser: resp.Body, release: release}
			return resp, nil
		}
		release()
		var de *dialError
		if !errors.As(err, &de) || rb != nil && rb.read.Load() || req.Context().Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, &unreachableError{tried: len(errs), of: len(cs), err: errors.Join(errs...)}
}

// dial connects to an instance, refusing what the dial policy refuses (an
// instance's address was checked when its view was made; this checks it
// against the catalog's VIPs of now).
func (h *httpVIP) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err == nil {
		a := h.vp.app
		err = a.dialRefused(a.index.Snapshot(), a.policy.Load(), ap)
	}
	if err == nil {
		var c net.Conn
		if c, err = h.dialer.DialContext(ctx, network, addr); err == nil {
			return c, nil
		}
	}
	return nil, &dialError{err: err}
}

// fail answers a request no instance answered: 502 naming the service with
// Retry-After, or for gRPC a trailers-only UNAVAILABLE naming it.
func (h *httpVIP) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client is gone
	}
	h.l.refused.Inc()
	msg := unreachableMessage(h.l, err)
	if !errors.Is(err, errNoInstance) {
		h.vp.logger.Warn("VIP request failed", zap.String("service", h.l.service), zap.Int("port", h.l.port), zap.Error(err))
	}
	if r.ProtoMajor == 2 && isGRPC(r.Header.Get("Content-Type")) {
		setGRPCUnavailable(w.Header(), msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Retry-After", "1")
	plain(w, http.StatusBadGateway, msg+"\n")
}

// dialError is a failed dial: nothing of the request was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// retryBody is a request body that a failed dial cannot spend: until it is
// first read, Close does nothing, so the next instance gets it whole. (The
// server closes the request body itself once the handler returns.)
type retryBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *retryBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *retryBody) Close() error {
	if b.read.Load() {
		return b.rc.Close()
	}
	return nil
}

// releaseBody is a response body that releases its instance once closed.
// It writes through when the body does (a 101 Switching Protocols
// response's, which ReverseProxy needs as an io.ReadWriteCloser).
type releaseBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

func (b *releaseBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("response body is not writable")
}

// bufferPool lends ReverseProxy its copy buffers, rather than it
// allocating 32 KiB a request.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[32 << 10]byte); ok {
		return b[:]
	}
	return new([32 << 10]byte)[:]
}

func (bp *bufferPool) Put(b []byte) {
	if len(b) == 32<<10 {
		bp.p.Put((*[32 << 10]byte)(b))
	}
}

// vipRequestsPerConn bounds the requests of one client connection in
// flight to the instances of an http port.
const vipRequestsPerConn = 4

// connSlotsKey keys a client connection's request slots in its context.
type connSlotsKey struct{}

// oneOfConnSlots serves each request with next once it holds one of its
// connection's slots, waiting for one while the connection has
// vipRequestsPerConn requests in flight.
func oneOfConnSlots(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slots, _ := r.Context().Value(connSlotsKey{}).(chan struct{})
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
