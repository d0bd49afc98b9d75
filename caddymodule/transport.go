package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(Transport))
}

// Transport is the reverse proxy's transport to the instances of netsel
// services: Caddy's http transport, configured as usual, that reaches an
// instance whose port carries h2c or grpc (see catalog.Port) over HTTP/2
// cleartext, and every other instance as configured (HTTP/1.1 by
// default). A gRPC request (Content-Type application/grpc, not grpc-web)
// goes over HTTP/2 whatever the port declares: gRPC has no HTTP/1.1 form.
//
// A round trip whose instance answered, but not in the protocol asked —
// a malformed HTTP/1.1 response, an HTTP/2 protocol or stream error — is
// answered here with 502 naming the service and the instance (for a gRPC
// request, the trailers-only status UNAVAILABLE saying the same), as a
// response: Caddy's passive health checks do not count it against the
// instance, which is up, and which one failed request would otherwise
// take from every client of the service for fail_duration (unless the
// passive checks' unhealthy_status names 502). Failed dials, timeouts and
// connections closed or reset stay errors, for Caddy's retries and
// passive health checks.
//
// The protocol is looked up by the service the netsel handler or upstream
// source resolved for the request: Caddy's own active health checks,
// which have none, reach every instance as configured (use the netsel
// app's health_checks instead).
type Transport struct {
	reverseproxy.HTTPTransport

	h1, h2 *reverseproxy.HTTPTransport
	app    *App
}

// CaddyModule returns the Caddy module information.
func (*Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.netsel",
		New: func() caddy.Module { return new(Transport) },
	}
}

// Provision sets up two http transports of the configuration: as given,
// and over HTTP/2 cleartext.
func (t *Transport) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	t.app = app
	cfg, err := json.Marshal(&t.HTTPTransport)
	if err != nil {
		return err
	}
	t.h1, t.h2 = new(reverseproxy.HTTPTransport), new(reverseproxy.HTTPTransport)
	if err := json.Unmarshal(cfg, t.h1); err != nil {
		return err
	}
	if err := json.Unmarshal(cfg, t.h2); err != nil {
		return err
	}
	if err := t.h2.EnableH2C(); err != nil {
		return err
	}
	if err := t.h1.Provision(ctx); err != nil {
		return err
	}
	if err := t.h2.Provision(ctx); err != nil {
		return fmt.Errorf("h2c transport: %w", err)
	}
	return nil
}

// RoundTrip sends r to its instance over the protocol the instance's port
// speaks.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt := t.h1
	if t.http2(r) {
		rt = t.h2
	}
	res, err := rt.RoundTrip(r)
	if err == nil || !answeredBadly(r, err) {
		return res, err
	}
	return t.badGateway(r, err), nil
}

// http2 reports whether r goes to its instance over HTTP/2 cleartext.
func (t *Transport) http2(r *http.Request) bool {
	if isGRPC(r.Header.Get("Content-Type")) {
		return true
	}
	di, ok := reverseproxy.GetDialInfo(r.Context())
	if !ok {
		return false
	}
	v := t.app.view(requestService(r))
	return v != nil && v.http2[di.Address]
}

// requestService is the service the netsel handler or upstream source
// resolved for r.
func requestService(r *http.Request) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	name, _ := repl.GetString(replService)
	return name
}

// answeredBadly reports whether err ended a round trip in which the
// instance answered, but not in the protocol asked: not a failed dial, a
// timeout, a closed or reset connection (the instance may be down behind
// a listening socket: Caddy retries and counts it), or the client's going
// away.
func answeredBadly(r *http.Request, err error) bool {
	var de reverseproxy.DialError
	var ne net.Error
	switch {
	case r.Context().Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &de), errors.As(err, &ne) && ne.Timeout():
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return false
	}
	return true
}

// badGateway is the answer to r whose instance failed it with err.
func (t *Transport) badGateway(r *http.Request, err error) *http.Response {
	addr := r.URL.Host
	if di, ok := reverseproxy.GetDialInfo(r.Context()); ok {
		addr = di.Address
	}
	msg := fmt.Sprintf("netsel: instance %s of service %q failed the request: %v", addr, requestService(r), err)
	res := &http.Response{
		Status: "502 Bad Gateway", StatusCode: http.StatusBadGateway,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}},
		Request: r,
	}
	body := msg + "\n"
	if isGRPC(r.Header.Get("Content-Type")) {
		// A trailers-only response: gRPC clients read the status from it.
		res.Status, res.StatusCode = "200 OK", http.StatusOK
		res.Header = http.Header{}
		setGRPCUnavailable(res.Header, msg)
		body = ""
	}
	res.Body, res.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	return res
}

// Cleanup closes the transports' idle connections.
func (t *Transport) Cleanup() error {
	for _, rt := range []*reverseproxy.HTTPTransport{t.h1, t.h2} {
		if rt != nil {
			rt.Cleanup()
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the transport from Caddyfile tokens; it takes
// the http transport's options:
//
//	transport netsel {
//		dial_timeout 2s
//		...
//	}
func (t *Transport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return t.HTTPTransport.UnmarshalCaddyfile(d)
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Transport)(nil)
	_ caddy.CleanerUpper    = (*Transport)(nil)
	_ http.RoundTripper     = (*Transport)(nil)
	_ caddyfile.Unmarshaler = (*Transport)(nil)
)
