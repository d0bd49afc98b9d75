package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"

	"github.com/netsel/netsel/registrar/api"
)

// SaveSnapshot returns a snapshot of NetSel's persistent state: every
// service with its VIP and ports, read at one etcd revision (an admin
// action). Live instances are not part of it. Encode it as JSON to keep
// it; RestoreSnapshot writes it back.
func (c *Client) SaveSnapshot(ctx context.Context) (*api.Snapshot, error) {
	var snap api.Snapshot
	if _, err := c.do(ctx, "GET", "/v1/backup", nil, nil, &snap, 0); err != nil {
		return nil, err
	}
	return &snap, nil
}

// RestoreSnapshot writes the services of doc, a snapshot document as
// SaveSnapshot's answer encodes to JSON, back into the registry, all in
// one transaction: every service and its VIP, or nothing (an admin action).
// doc is sent as it is, so the registrar judges it whole: an invalid record
// is a 400 *APIError naming it (e.g. field "services[2].vip"), and nothing
// is written.
//
// Without force, a registry that holds any service or VIP reservation
// refuses the restore with a 409. With force, the services doc names are
// overwritten with its records (their VIPs and ports); the others are
// kept, and a 409 refuses a doc that gives one of their VIPs to another
// service.
func (c *Client) RestoreSnapshot(ctx context.Context, doc []byte, force bool) (*api.RestoreResponse, error) {
	if !json.Valid(doc) {
		return nil, errors.New("netsel client: the snapshot is not JSON")
	}
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out api.RestoreResponse
	if _, err := c.do(ctx, "PUT", "/v1/backup", q, json.RawMessage(doc), &out, 0); err != nil {
		return nil, err
	}
	return &out, nil
}
