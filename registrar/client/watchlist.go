package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// WatchServices is a blocking query on the list of services: it returns
// once any service has changed after index (0 for now), or after wait (0:
// the registrar's default). It returns the list and the index to pass to the
// next call.
func (c *Client) WatchServices(ctx context.Context, index int64, wait time.Duration) (*api.ServiceList, int64, error) {
	q := url.Values{"index": {strconv.FormatInt(index, 10)}}
	timeout := defaultTimeout + 11*time.Minute
	if wait > 0 {
		q.Set("wait", wait.String())
		timeout = defaultTimeout + wait + wait/16
	}
	var out api.ServiceList
	idx, err := c.do(ctx, "GET", "/v1/services", q, nil, &out, timeout)
	if err != nil {
		return nil, index, err
	}
	return &out, idx, nil
}
