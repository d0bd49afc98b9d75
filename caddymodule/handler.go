package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("netsel", parseHandler)
	httpcaddyfile.RegisterDirectiveOrder("netsel", httpcaddyfile.Before, "reverse_proxy")
}

// Handler guards the HTTP proxy. It answers 508 Loop Detected to a request
// that has already passed through this proxy (its Via header names the
// app), 404 naming the zones to a Host that is not "<service>.<zone>", 502
// Bad Gateway with a body naming the service when the request's service is
// unknown or has no instance to dial, and 503 with Retry-After until the app
// has first read the catalog from etcd. Otherwise it sets
// {http.netsel.service}, adds the app to the request's Via header and
// passes the request on, typically to a reverse_proxy with "dynamic netsel".
// Without it such requests get Caddy's bare 503 for "no upstreams
// available", and loops are not detected.
type Handler struct {
	// Service names the service, with placeholders, as in the netsel
	// upstream source. Default: <service> of a Host "<service>.<zone>" for
	// one of the app's zones.
	Service string `json:"service,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.netsel",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the netsel app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	h.app = app
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.app.looped(r) {
		return plain(w, http.StatusLoopDetected, fmt.Sprintf(
			"netsel: loop detected: this request has already passed through this proxy (Via: %s); an instance of its service points back at the proxy\n",
			strings.Join(r.Header.Values("Via"), ", ")))
	}
	name, inZone := h.app.serviceFor(r, h.Service)
	status, msg := http.StatusBadGateway, ""
	switch v := h.app.view(name); {
	case !inZone:
		status = http.StatusNotFound
		msg = fmt.Sprintf("netsel: host %q is not <service>.<zone> in zone %s\n", r.Host, strings.Join(h.app.zoneList(), ", "))
	case !h.app.Index().Snapshot().Synced():
		// Not "unknown service": the catalog has not been read yet.
		status, msg = http.StatusServiceUnavailable, "netsel: the service catalog is not loaded from etcd yet\n"
		w.Header().Set("Retry-After", "1")
	case name == "":
		msg = "netsel: the request names no service (host " + fmt.Sprintf("%q", r.Host) + ")\n"
	case v == nil:
		msg = fmt.Sprintf("netsel: unknown service %q\n", name)
	case len(v.dials) == 0 && v.refused > 0:
		msg = fmt.Sprintf("netsel: service %q has no instance the proxy may dial (%d refused by its address policy)\n", name, v.refused)
	case len(v.dials) == 0:
		msg = fmt.Sprintf("netsel: service %q has no healthy instance\n", name)
	default:
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(replService, name)
			repl.Set(replHopMarked, true)
		}
		h.app.markHop(r)
		return unreached(w, r, next, name, &h.app.open)
	}
	return plain(w, status, msg)
}

// unreached serves r with next (reverse_proxy) and, when next fails
// without answering — every instance refused the dial or is marked down
// after failing — answers 502 naming the service, with Retry-After, in
// place of Caddy's bare status.
func unreached(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, name string, open *openConns) error {
	aw := &answerWatch{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, open: open}
	err := next.ServeHTTP(aw, r)
	if aw.closed != nil {
		aw.closed()
	}
	var he caddyhttp.HandlerError
	if err == nil || aw.answered || !errors.As(err, &he) || he.StatusCode < 500 {
		return err
	}
	w.Header().Set("Retry-After", "1")
	if tags := requestTagsOf(r); tags != "" {
		return plain(w, http.StatusBadGateway, fmt.Sprintf("netsel: no instance of service %q with tags %q could be reached: %v\n", name, tags, he.Err))
	}
	return plain(w, http.StatusBadGateway, fmt.Sprintf("netsel: no instance of service %q could be reached: %v\n", name, he.Err))
}

// answerWatch notes whether a response was started through it, and counts
// the request as open to the instance serving it (see inflight).
type answerWatch struct {
	caddyhttp.ResponseWriterWrapper
	answered bool
	open     *openConns
	closed   func() // counts the request closed at its instance
}

// inflight is the writer the netsel selection policy tells which instance
// serves the request (again on a retry).
type inflight interface{ servedBy(key string) }

func (a *answerWatch) servedBy(key string) {
	if a.closed != nil {
		a.closed()
	}
	a.closed = a.open.open(key)
}

func (a *answerWatch) WriteHeader(status int) {
	a.answered = true
	a.ResponseWriterWrapper.WriteHeader(status)
}

func (a *answerWatch) Write(b []byte) (int, error) {
	a.answered = true
	return a.ResponseWriterWrapper.Write(b)
}

func (a *answerWatch) ReadFrom(r io.Reader) (int64, error) {
	a.answered = true
	return a.ResponseWriterWrapper.ReadFrom(r)
}

// plain answers status with msg as text.
func plain(w http.ResponseWriter, status int, msg string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := w.Write([]byte(msg))
	return err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	netsel [<service>]
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Service = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("unrecognized netsel handler option '%s': takes no block", d.Val())
	}
	return nil
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
