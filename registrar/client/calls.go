package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// Registration is what a service registers. Set ID to keep one identity
// across restarts of the registrar, the network or the service; when it is
// empty, Register and Keepalive pick one (NewID) before the first attempt
// and keep it for every retry and fail-over.
type Registration struct {
	// Service is the service name (a DNS label).
	Service string
	// ID is the instance id (a DNS label); empty: a random one (NewID),
	// returned in Assignment.ID.
	ID string
	// Address and Port are where the instance listens. Address is an IP
	// address other hosts can reach the instance at: a registrar serving
	// many hosts refuses a loopback one. When Address is empty, Register
	// fills in this host's source address on its route to the registrar
	// (the address Consul would advertise), or, when that is loopback —
	// the registrar runs on this host — sends none and the registrar fills
	// in its host's address (a single-host registrar: the address the
	// request came from). Keepalive registers the address the first
	// registration got on every later one.
	Address string
	Port    int
	// Ports are named ports; the first registration of a service sets the
	// service's ports from them (or one port "default" when there are none).
	Ports map[string]int
	// Protocols say what each port carries (port name, or "default" for
	// Port when Ports is empty -> "tcp", "udp", "http", "h2c" or "grpc");
	// like the ports, the service's first registration sets them.
	Protocols map[string]string
	// TTL is how long the instance outlives its last heartbeat (0: the
	// registrar's default, 60s).
	TTL time.Duration
	// Weight, Tags, Meta and Zone are carried to readers as given.
	Weight int
	Tags   []string
	Meta   map[string]string
	Zone   string
	// Checks are active health checks the registrars run against the
	// instance (see api.Check): an instance that fails them leaves DNS
	// answers and the proxies until it passes again.
	Checks []api.Check
}

func (r *Registration) request() *api.RegisterRequest {
	return &api.RegisterRequest{
		ID: r.ID, Address: r.Address, Port: r.Port, Ports: r.Ports, Protocols: r.Protocols, TTL: api.Duration(r.TTL),
		Weight: r.Weight, Tags: r.Tags, Meta: r.Meta, Zone: r.Zone, Checks: r.Checks,
	}
}

// Assignment is what registration returns: the instance id, the service's
// VIP and virtual port(s), and the TTL.
type Assignment = api.RegisterResponse

func instancesPath(service string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances"
}

func instancePath(service, id string) string {
	return instancesPath(service) + "/" + url.PathEscape(id)
}

// Register registers an instance (the original ServiceClient::register).
// Registering the same ID again is safe: it replaces the instance and keeps
// the service's VIP. Without an ID, Register picks one before the first
// attempt, so when a registrar's answer is lost and the request fails over
// to the next registrar, the instance is registered once, not twice.
//
// An empty Address is filled in as Registration.Address says; the
// Assignment's Address is the one registered.
func (c *Client) Register(ctx context.Context, reg Registration) (*Assignment, error) {
	return c.register(ctx, reg, 0)
}

// register is Register with each registrar's attempt bounded by timeout
// (0: the client's default).
func (c *Client) register(ctx context.Context, reg Registration, timeout time.Duration) (*Assignment, error) {
	if reg.ID == "" {
		reg.ID = NewID()
	}
	if reg.Address == "" {
		reg.Address = c.advertise(ctx)
	}
	var out Assignment
	if _, err := c.do(ctx, "POST", instancesPath(reg.Service), nil, reg.request(), &out, timeout); err != nil {
		return nil, err
	}
	return &out, nil
}

// Heartbeat renews instance id of service (the original
// ServiceClient::send_heartbeat). It returns an error matching ErrNotFound
// when the instance has expired: register again.
func (c *Client) Heartbeat(ctx context.Context, service, id string) error {
	return c.heartbeat(ctx, service, id, 0)
}

// heartbeat is Heartbeat with each registrar's attempt bounded by timeout
// (0: the client's default).
func (c *Client) heartbeat(ctx context.Context, service, id string, timeout time.Duration) error {
	_, err := c.do(ctx, "PUT", instancePath(service, id)+"/heartbeat", nil, nil, nil, timeout)
	return err
}

// Deregister removes instance id of service now. An instance that is
// already gone is not an error.
func (c *Client) Deregister(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, "DELETE", instancePath(service, id), nil, nil, nil, 0)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Services lists the services the registrar knows.
func (c *Client) Services(ctx context.Context) (*api.ServiceList, error) {
	var out api.ServiceList
	if _, err := c.do(ctx, "GET", "/v1/services", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}

// Service returns service name and its live instances in every state but
// critical and maintenance (see ServiceByState), read consistently page by
// page (each page is a linearizable read; an instance
// that comes or goes between pages may be missing). An unknown service is an
// error matching ErrNotFound.
func (c *Client) Service(ctx context.Context, name string) (*api.ServiceView, error) {
	out, _, err := c.pages(ctx, name, nil, 0)
	return out, err
}

// ServiceByState is Service listing the instances in state: "any" lists
// every instance, whatever its state; "passing", "warning", "critical",
// "maintenance" or "draining" those in it; "" what Service lists (every
// state but critical and maintenance).
func (c *Client) ServiceByState(ctx context.Context, name, state string) (*api.ServiceView, error) {
	var q url.Values
	if state != "" {
		q = url.Values{"state": {state}}
	}
	out, _, err := c.pages(ctx, name, q, 0)
	return out, err
}

// ServiceWithTags is ServiceByState listing only the instances that carry
// every one of tags (matched ignoring ASCII case; at most 64).
func (c *Client) ServiceWithTags(ctx context.Context, name, state string, tags ...string) (*api.ServiceView, error) {
	q := url.Values{"tag": tags}
	if state != "" {
		q.Set("state", state)
	}
	out, _, err := c.pages(ctx, name, q, 0)
	return out, err
}

// Watch is a blocking query on service name: it returns once the service
// has changed after index (an index returned before; 0 for now), or after
// wait (0: the registrar's default, 5m). It returns the service (nil when
// it does not exist) and the index to pass to the next Watch.
func (c *Client) Watch(ctx context.Context, name string, index int64, wait time.Duration) (*api.ServiceView, int64, error) {
	q := url.Values{"index": {strconv.FormatInt(index, 10)}}
	timeout := defaultTimeout + 10*time.Minute + time.Minute
	if wait > 0 {
		q.Set("wait", wait.String())
		timeout = defaultTimeout + wait + wait/16
	}
	out, idx, err := c.pages(ctx, name, q, timeout)
	if errors.Is(err, ErrNotFound) {
		return nil, idx, nil
	}
	if err != nil {
		return nil, index, err
	}
	return out, idx, nil
}

// pageLimit is the number of instances the client asks for per page: with
// registrations of at most 64 KiB, a page stays under maxAnswer.
const pageLimit = 500

// pages reads service name with query q (and timeout) and follows the
// answer's Next cursor until the last page, appending the instances. A
// blocking query (q has index) waits for the first page only: later pages
// are read from the same registrar's index at once (?stale). It returns the
// first page's index.
func (c *Client) pages(ctx context.Context, name string, q url.Values, timeout time.Duration) (*api.ServiceView, int64, error) {
	path := "/v1/services/" + url.PathEscape(name)
	first := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	for k, v := range q {
		first[k] = v
	}
	var out api.ServiceView
	idx, err := c.do(ctx, "GET", path, first, nil, &out, timeout)
	if err != nil {
		return nil, idx, err
	}
	next := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	if q.Has("index") {
		next.Set("stale", "")
	}
	if q.Has("state") {
		next.Set("state", q.Get("state"))
	}
	if q.Has("tag") {
		next["tag"] = q["tag"]
	}
	for after := out.Next; after != ""; {
		next.Set("after", after)
		var page api.ServiceView
		if _, err := c.do(ctx, "GET", path, next, nil, &page, 0); err != nil {
			return nil, idx, fmt.Errorf("service %s after instance %s: %w", name, after, err)
		}
		out.Instances = append(out.Instances, page.Instances...)
		after = page.Next
	}
	out.Next = ""
	return &out, idx, nil
}
