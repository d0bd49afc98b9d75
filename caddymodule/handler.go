package caddymodule

import (
	"fmt"
	"net/http"

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

// Handler answers 502 Bad Gateway with a body naming the service when the
// request's service is unknown or has no healthy instance, 503 with
// Retry-After until the app has first read the catalog from etcd, and otherwise
// sets {http.netsel.service} and passes the request on, typically to a
// reverse_proxy with "dynamic netsel". Without it such requests get Caddy's
// bare 503 for "no upstreams available".
type Handler struct {
	// Service names the service, with placeholders, as in the netsel
	// upstream source. Default: the host's first label.
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
	name := serviceFor(r, h.Service)
	status, msg := http.StatusBadGateway, ""
	switch v := h.app.view(name); {
	case !h.app.Index().Snapshot().Synced():
		// Not "unknown service": the catalog has not been read yet.
		status, msg = http.StatusServiceUnavailable, "netsel: the service catalog is not loaded from etcd yet\n"
		w.Header().Set("Retry-After", "1")
	case name == "":
		msg = "netsel: the request names no service (host " + fmt.Sprintf("%q", r.Host) + ")\n"
	case v == nil:
		msg = fmt.Sprintf("netsel: unknown service %q\n", name)
	case len(v.dials) == 0:
		msg = fmt.Sprintf("netsel: service %q has no healthy instance\n", name)
	default:
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set(replService, name)
		}
		return next.ServeHTTP(w, r)
	}
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
