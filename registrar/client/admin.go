package client

import (
	"context"
	"net/url"
)

// DeleteService removes a service that has no live instances and frees its
// VIP (an admin action). It fails with a 409 *APIError while instances remain.
func (c *Client) DeleteService(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", "/v1/services/"+url.PathEscape(name), nil, nil, nil, 0)
	return err
}
