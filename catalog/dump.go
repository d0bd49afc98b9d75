package catalog

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Dump is the persistent part of a keyspace, read at one revision: the
// service records and the VIP reservations. Everything else — instances
// and the keys beside them, registrar membership, readers — lives under
// leases and is not part of it.
type Dump struct {
	// Revision is the etcd revision the dump was read at.
	Revision int64
	// Services are the records that decode, sorted by name.
	Services []*Service
	// Reservations maps each reserved VIP to the service name its key holds.
	Reservations map[netip.Addr]string
}

// ReadDump reads the service records and VIP reservations of ks in one
// linearizable transaction. Records that do not decode, or that name
// another service than their key, are passed to onSkip and left out.
func ReadDump(ctx context.Context, kv clientv3.KV, ks Keyspace, onSkip func(key string, err error)) (*Dump, error) {
	if onSkip == nil {
		onSkip = func(string, error) {}
	}
	resp, err := kv.Txn(ctx).Then(
		clientv3.OpGet(ks.ServicesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(ks.VIPsPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read persistent keys: %w", err)
	}
	d := &Dump{Revision: resp.Header.Revision, Reservations: map[netip.Addr]string{}}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		key := string(kv.Key)
		k, ok := ks.ParseKey(key)
		if !ok || k.Kind != KindService {
			onSkip(key, fmt.Errorf("not a service key"))
			continue
		}
		svc, err := DecodeService(kv.Value)
		if err == nil && svc.Name != k.Service {
			err = fmt.Errorf("record names service %q", svc.Name)
		}
		if err != nil {
			onSkip(key, err)
			continue
		}
		svc.ModRevision = kv.ModRevision
		d.Services = append(d.Services, svc)
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		k, ok := ks.ParseKey(string(kv.Key))
		if !ok || k.Kind != KindVIP {
			onSkip(string(kv.Key), fmt.Errorf("not a VIP key"))
			continue
		}
		d.Reservations[k.VIP] = string(kv.Value)
	}
	slices.SortFunc(d.Services, func(a, b *Service) int { return strings.Compare(a.Name, b.Name) })
	return d, nil
}

// RestoreTxn returns the conditions and operations of the one transaction
// that writes services (each valid, their names and VIPs distinct) back into
// ks, each with the reservation of its VIP.
//
// With cur nil, the conditions hold only while ks has no service record and
// no VIP reservation. With cur, a Dump of ks read before, they hold only
// while no record or reservation was created or changed since cur.Revision,
// and a reservation of cur held by a service of services for a VIP that
// services does not give it (its old VIP) is deleted. Records and
// reservations of cur that services does not touch are kept.
func (k Keyspace) RestoreTxn(services []*Service, cur *Dump) ([]clientv3.Cmp, []clientv3.Op, error) {
	var cmps []clientv3.Cmp
	if cur == nil {
		cmps = []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(k.ServicesPrefix()), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(k.VIPsPrefix()), "=", 0).WithPrefix(),
		}
	} else {
		cmps = []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(k.ServicesPrefix()), "<", cur.Revision+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(k.VIPsPrefix()), "<", cur.Revision+1).WithPrefix(),
		}
	}
	ops := make([]clientv3.Op, 0, 2*len(services))
	vips := make(map[netip.Addr]bool, len(services))
	names := make(map[string]bool, len(services))
	for _, s := range services {
		vips[s.VIP], names[s.Name] = true, true
	}
	for _, s := range services {
		val, err := EncodeService(s)
		if err != nil {
			return nil, nil, fmt.Errorf("encode service %s: %w", s.Name, err)
		}
		ops = append(ops,
			clientv3.OpPut(k.ServiceKey(s.Name), string(val)),
			clientv3.OpPut(k.VIPKey(s.VIP), s.Name))
	}
	if cur != nil {
		// Free every other VIP reserved for a service of services: its
		// old one, or one left by a record that no longer decodes.
		for _, vip := range slices.SortedFunc(maps.Keys(cur.Reservations), netip.Addr.Compare) {
			if names[cur.Reservations[vip]] && !vips[vip] {
				ops = append(ops, clientv3.OpDelete(k.VIPKey(vip)))
			}
		}
	}
	return cmps, ops, nil
}
