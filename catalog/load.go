package catalog

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// LoadService reads service name and its instances straight from etcd, in one
// linearizable transaction, for callers that must see their own writes. It
// returns a nil Entry when neither the service nor any instance exists, and
// the revision read. Values that do not decode are left out, as the Index
// leaves them out.
func LoadService(ctx context.Context, kv clientv3.KV, ks Keyspace, name string, onSkip func(key string, err error)) (*Entry, int64, error) {
	if onSkip == nil {
		onSkip = func(string, error) {}
	}
	resp, err := kv.Txn(ctx).Then(
		// The keys beside instances first, so that each instance is
		// decorated as it is put.
		clientv3.OpGet(ks.HealthKey(name, ""), clientv3.WithPrefix()),
		clientv3.OpGet(ks.MaintenanceKey(name, ""), clientv3.WithPrefix()),
		clientv3.OpGet(ks.DrainKey(name, ""), clientv3.WithPrefix()),
		clientv3.OpGet(ks.ServiceKey(name)),
		clientv3.OpGet(ks.ServiceInstancesPrefix(name), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("read service %s: %w", name, err)
	}
	st := newState(ks, onSkip)
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			st.apply(kv, false, kv.ModRevision)
		}
	}
	s, ok := st.services[name]
	if !ok {
		return nil, resp.Header.Revision, nil
	}
	return s.entry(name), resp.Header.Revision, nil
}
