package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(new(Upstreams))
}

// Upstreams is a dynamic upstream source that returns, from the netsel
// app's in-memory catalog, the healthy instances of one service, sorted by
// instance ID, dialled at each instance's main port, less those at addresses
// the app's dial policy refuses. The service is the first DNS label of
// Service, with placeholders replaced per request, or by default <service>
// of a Host "<service>.<zone>" in one of the app's zones, so "Host:
// web.netsel" reaches service "web". An unknown service, one with no healthy
// instance, a Host outside the zones, or a request that has already passed
// through this app yields no upstreams, which Caddy answers with 503 at
// once; put the netsel handler before reverse_proxy for a 502 that names the
// service, a 404 naming the zones, a 508 for a loop, and the Via mark that
// detects loops.
//
// With Tags or TagsHeader, only the instances carrying every tag count,
// and a request whose tags none carries gets no upstreams (see tags.go).
// With the app's Locality, only those in it count while there is any
// (see locality.go).
//
// Caddy's load balancing, retries and passive health checks apply to what
// this returns. Caddy's weighted_round_robin takes weights from its own
// config, not from upstreams: use the netsel_weighted policy to honour
// instance weights.
//
// A service of more than Window instances yields a window of them: Window
// consecutive instances (by ID, wrapping around) from one chosen at random
// in proportion to its weight, so that a request costs the same for a
// service of 30,000 instances as for one of 30. Caddy's selection and
// retries work within the window; netsel_weighted takes its first
// available upstream, which honours weights over the whole service.
// Policies that hash (ip_hash, uri_hash, header, cookie, ...) see a
// different window per request: set Window to -1 for them.
type Upstreams struct {
	// Service names the service, with placeholders, e.g.
	// "{http.request.header.X-Service}". Default: <service> of a Host
	// "<service>.<zone>" for one of the app's zones.
	Service string `json:"service,omitempty"`

	// Window is the most upstreams handed to the reverse proxy per
	// request; -1 hands every healthy instance. Default: DefaultWindow.
	Window int `json:"window,omitempty"`

	// Tags, when set, leave only the instances that carry every one of
	// them (ignoring ASCII case; at most 64, each 1-255 bytes).
	Tags []string `json:"tags,omitempty"`

	// TagsHeader names a request header field whose values (repeatable,
	// comma-separated) are more tags the instances must carry, e.g.
	// "X-Netsel-Tag". Off by default: it lets a client choose among the
	// service's instances (a canary, or one instance by a tag only it
	// carries), though never reach outside them or the Tags.
	TagsHeader string `json:"tags_header,omitempty"`

	app *App
}

// DefaultWindow is the default of Upstreams.Window.
const DefaultWindow = 32

// replWindow is the placeholder set when the upstreams of a request are a
// window of its service's instances; see Upstreams.
const replWindow = "http.netsel.window"

// CaddyModule returns the Caddy module information.
func (*Upstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.netsel",
		New: func() caddy.Module { return new(Upstreams) },
	}
}

// Provision gets the netsel app.
func (u *Upstreams) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	u.app = app
	return nil
}

// GetUpstreams returns the healthy instances of the request's service, or a
// window of them (see Upstreams).
//
// The instance list, dial addresses and weights are cached per catalog
// entry and health state; the returned Upstream values are fresh on every
// call, as Caddy's own sources make them, because the reverse proxy writes
// to each Upstream it is given (Host, circuit breaker, limits) and sharing
// them between concurrent requests would race. So a call costs O(window).
func (u *Upstreams) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	name, _ := u.app.serviceFor(r, u.Service)
	if name == "" {
		return nil, nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		if marked, _ := repl.Get(replHopMarked); marked == nil && u.app.looped(r) {
			return nil, nil // it came back through us: dial nothing
		}
		repl.Set(replService, name)
	}
	v := u.app.view(name)
	if v == nil {
		return nil, nil
	}
	dials, cum := v.served.dials, v.served.cum
	if tags, filtered := u.requestTags(r); filtered {
		if repl != nil {
			repl.Set(replTags, strings.Join(tags, ","))
		}
		p := v.withTags(tags)
		dials, cum = p.dials, p.cum
	}
	if len(dials) == 0 {
		return nil, nil
	}
	n, start := len(dials), 0
	w := u.window()
	windowed := w > 0 && n > w
	if windowed {
		n, start = w, weightedPosition(cum)
	}
	if repl != nil {
		// Set on every call: a retry's upstreams may no longer be a window.
		repl.Set(replWindow, windowed)
	}
	ups := make([]reverseproxy.Upstream, n)
	out := make([]*reverseproxy.Upstream, n)
	for i := range ups {
		ups[i].Dial = dials[(start+i)%len(dials)]
		out[i] = &ups[i]
	}
	return out, nil
}

// window is the Window in effect: 0 or less for no window.
func (u *Upstreams) window() int {
	if u.Window == 0 {
		return DefaultWindow
	}
	return u.Window
}

// ResetCache is called by the reverse proxy before a retry. The catalog is
// pushed by etcd's watch and health state by the app's checker, so there
// is nothing stale to drop: a failed instance is skipped on retry by Caddy's
// passive health checks.
func (u *Upstreams) ResetCache(*http.Request) error { return nil }

// Validate checks the window and the tags.
func (u *Upstreams) Validate() error {
	if u.Window < -1 {
		return fmt.Errorf("window: %d is neither -1 (no window) nor a positive number of upstreams", u.Window)
	}
	return u.validateTags()
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens. Syntax:
//
//	dynamic netsel [<service>] {
//		window <n>|-1
//		tags <tag>...
//		tags_header <field>
//	}
func (u *Upstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		u.Service = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tags":
			u.Tags = append(u.Tags, d.RemainingArgs()...)
			if len(u.Tags) == 0 {
				return d.Err("tags: needs at least one tag")
			}
			continue
		case "tags_header":
			if !d.NextArg() {
				return d.ArgErr()
			}
			u.TagsHeader = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			continue
		case "window":
		default:
			return d.Errf("unrecognized netsel upstreams option '%s': want window, tags or tags_header", d.Val())
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(d.Val())
		if err != nil || n < -1 || n == 0 {
			return d.Errf("window: %q is neither -1 (no window) nor a positive number of upstreams", d.Val())
		}
		u.Window = n
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner                  = (*Upstreams)(nil)
	_ caddy.Validator                    = (*Upstreams)(nil)
	_ reverseproxy.UpstreamSource        = (*Upstreams)(nil)
	_ reverseproxy.CachingUpstreamSource = (*Upstreams)(nil)
	_ caddyfile.Unmarshaler              = (*Upstreams)(nil)
)
