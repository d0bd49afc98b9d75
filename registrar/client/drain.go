package client

import (
	"context"
	"net/url"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// Maintenance takes instance id of service out of rotation — DNS, both
// proxies and the API's default listing leave it out — without
// deregistering it, until EndMaintenance; reason (at most 256 bytes; may
// be empty) is shown with it. It survives re-registrations of the
// instance and ends with it. An unknown instance is an error matching
// ErrNotFound.
func (c *Client) Maintenance(ctx context.Context, service, id, reason string) error {
	_, err := c.do(ctx, "PUT", instancePath(service, id)+"/maintenance", nil, api.MaintenanceRequest{Reason: reason}, nil, 0)
	return err
}

// EndMaintenance puts instance id of service back in rotation. It is not
// an error when the instance was not in maintenance; an unknown instance
// is an error matching ErrNotFound.
func (c *Client) EndMaintenance(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, "DELETE", instancePath(service, id)+"/maintenance", nil, nil, nil, 0)
	return err
}

// DrainOptions tune Drain. The zero value drains with the registrar's
// default timeout (30s), waits for revisions only, and deregisters.
type DrainOptions struct {
	// Timeout bounds the wait for the readers: at most 10m; zero means the
	// registrar's default, 30s.
	Timeout time.Duration
	// Connections waits also until no proxy holds a connection (or an
	// HTTP request in flight) to the instance.
	Connections bool
	// Keep leaves the instance registered, draining, after the wait
	// (deregister=false); EndDrain puts it back in rotation.
	Keep bool
}

// Drain takes instance id of service out of rotation and waits until every
// live DNS server and proxy has stopped sending it new traffic (each
// serves the catalog revision that marked it draining) and, with
// Connections, until the proxies hold no connection to it — or until the
// timeout — then deregisters it unless Keep. The answer says whether every
// reader confirmed and, if not, which did not. An unknown instance is an
// error matching ErrNotFound.
func (c *Client) Drain(ctx context.Context, service, id string, opts DrainOptions) (*api.DrainResponse, error) {
	q := url.Values{}
	wait := 30 * time.Second
	if opts.Timeout > 0 {
		q.Set("timeout", opts.Timeout.String())
		wait = opts.Timeout
	}
	if opts.Connections {
		q.Set("wait", "connections")
	}
	if opts.Keep {
		q.Set("deregister", "false")
	}
	var out api.DrainResponse
	if _, err := c.do(ctx, "POST", instancePath(service, id)+"/drain", q, nil, &out, defaultTimeout+wait); err != nil {
		return nil, err
	}
	return &out, nil
}

// EndDrain ends the drain of an instance that Drain with Keep left
// registered: it takes traffic again. It is not an error when the instance
// was not draining; an unknown instance is an error matching ErrNotFound.
func (c *Client) EndDrain(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, "DELETE", instancePath(service, id)+"/drain", nil, nil, nil, 0)
	return err
}

// Readers lists the live readers of the catalog — each CoreDNS with the
// NetSel plugin and each Caddy with the NetSel app — with the catalog
// revision each serves and its open connections per instance.
func (c *Client) Readers(ctx context.Context) (*api.ReaderList, error) {
	var out api.ReaderList
	if _, err := c.do(ctx, "GET", "/v1/readers", nil, nil, &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
