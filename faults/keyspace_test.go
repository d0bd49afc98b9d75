//go:build linux

package faults

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// keyspace is everything under the prefix, decoded.
type keyspace struct {
	services  map[string]*catalog.Service
	vips      map[netip.Addr]string
	instances map[string]map[string]*catalog.Instance // service -> id -> instance
	revision  int64
}

// readKeyspace reads the whole keyspace at one revision.
func readKeyspace(ctx context.Context, cli *clientv3.Client) (*keyspace, error) {
	resp, err := cli.Get(ctx, ks.Prefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read keyspace: %w", err)
	}
	k := &keyspace{services: map[string]*catalog.Service{}, vips: map[netip.Addr]string{},
		instances: map[string]map[string]*catalog.Instance{}, revision: resp.Header.Revision}
	for _, kv := range resp.Kvs {
		key, ok := ks.ParseKey(string(kv.Key))
		if !ok {
			return nil, fmt.Errorf("key %q is not in the layout", kv.Key)
		}
		switch key.Kind {
		case catalog.KindService:
			svc, err := catalog.DecodeService(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			k.services[key.Service] = svc
		case catalog.KindVIP:
			k.vips[key.VIP] = string(kv.Value)
		case catalog.KindInstance:
			in, err := catalog.DecodeInstance(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			in.Lease = kv.Lease
			if k.instances[key.Service] == nil {
				k.instances[key.Service] = map[string]*catalog.Instance{}
			}
			k.instances[key.Service][key.ID] = in
		}
	}
	return k, nil
}

// whole returns what is half-written: an instance without its service, a
// service without its VIP reservation (or with a VIP another service
// holds), a VIP naming no service, an instance on no lease.
func (k *keyspace) whole() []string {
	var bad []string
	for name, svc := range k.services {
		if owner, ok := k.vips[svc.VIP]; !ok || owner != name {
			bad = append(bad, fmt.Sprintf("service %s has VIP %v, reserved for %q", name, svc.VIP, owner))
		}
	}
	for vip, name := range k.vips {
		if svc, ok := k.services[name]; !ok || svc.VIP != vip {
			bad = append(bad, fmt.Sprintf("VIP %v is reserved for service %q, which does not hold it", vip, name))
		}
	}
	for name, ins := range k.instances {
		if _, ok := k.services[name]; !ok {
			bad = append(bad, fmt.Sprintf("service %s has %d instances but no record", name, len(ins)))
		}
		for id, in := range ins {
			if in.Lease == 0 {
				bad = append(bad, fmt.Sprintf("instance %s/%s has no lease", name, id))
			}
		}
	}
	return bad
}

// orphanLeases returns the leases that hold no key.
func orphanLeases(ctx context.Context, cli *clientv3.Client) ([]clientv3.LeaseID, int, error) {
	ls, err := cli.Leases(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list leases: %w", err)
	}
	var orphans []clientv3.LeaseID
	for _, l := range ls.Leases {
		ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			return nil, 0, fmt.Errorf("lease %x: %w", l.ID, err)
		}
		if ttl.TTL > 0 && len(ttl.Keys) == 0 {
			orphans = append(orphans, l.ID)
		}
	}
	return orphans, len(ls.Leases), nil
}

// leaseTTL returns the seconds lease has left (-1 when it is gone).
func leaseTTL(t *testing.T, cli *clientv3.Client, lease int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		t.Fatalf("TimeToLive %x: %v", lease, err)
	}
	return r.TTL
}
