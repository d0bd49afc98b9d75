package catalog

import (
	"context"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Page returns at most limit live instances, sorted by ID, of those whose ID
// sorts after after ("" for the first), and the ID to pass as after for the
// next page: "" when no instance follows. It costs O(log n + limit).
func (e *Entry) Page(after string, limit int) (page []*Instance, next string) {
	c := sort.Search(len(e.chunks), func(k int) bool {
		ch := e.chunks[k]
		return ch[len(ch)-1].ID > after
	})
	if c == len(e.chunks) || limit <= 0 {
		return nil, ""
	}
	i := sort.Search(len(e.chunks[c]), func(i int) bool { return e.chunks[c][i].ID > after })
	page = make([]*Instance, 0, min(limit, e.n))
	for ; c < len(e.chunks); c, i = c+1, 0 {
		for _, in := range e.chunks[c][i:] {
			if len(page) == limit {
				return page, page[len(page)-1].ID
			}
			page = append(page, in)
		}
	}
	return page, ""
}

// LoadServicePage reads service name and at most limit of its instances,
// those whose ID sorts after after ("" for the first), straight from etcd in
// one linearizable transaction: the instances are a range read with a
// limit, not the whole prefix. It returns a nil Entry when neither the
// service nor any instance of the page exists, the revision read, and the
// ID to pass as after for the next page ("" when no key follows). Values
// that do not decode are left out, as LoadService leaves them out, but
// count towards limit.
func LoadServicePage(ctx context.Context, kv clientv3.KV, ks Keyspace, name, after string, limit int, onSkip func(key string, err error)) (*Entry, int64, string, error) {
	if onSkip == nil {
		onSkip = func(string, error) {}
	}
	prefix := ks.ServiceInstancesPrefix(name)
	from := prefix
	if after != "" {
		from = ks.InstanceKey(name, after) + "\x00" // the first key after it
	}
	// The keys beside the page's instances (health, maintenance, drain)
	// are read over the same range of ids: there are never more of each
	// than there are instances.
	ops := []clientv3.Op{
		clientv3.OpGet(ks.ServiceKey(name)),
		clientv3.OpGet(from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit))),
	}
	for _, key := range []func(string, string) string{ks.HealthKey, ks.MaintenanceKey, ks.DrainKey} {
		sp := key(name, "")
		sf := sp
		if after != "" {
			sf = key(name, after) + "\x00"
		}
		ops = append(ops, clientv3.OpGet(sf, clientv3.WithRange(clientv3.GetPrefixRangeEnd(sp)), clientv3.WithLimit(int64(limit))))
	}
	resp, err := kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, "", fmt.Errorf("read service %s: %w", name, err)
	}
	st := newState(ks, onSkip)
	next := ""
	// Side keys first, so that each instance is decorated as it is put.
	for _, i := range []int{2, 3, 4, 0, 1} {
		rr := resp.Responses[i].GetResponseRange()
		for _, kv := range rr.Kvs {
			st.apply(kv, false, kv.ModRevision)
		}
		if i == 1 && rr.More && len(rr.Kvs) > 0 {
			next = strings.TrimPrefix(string(rr.Kvs[len(rr.Kvs)-1].Key), prefix)
		}
	}
	s, ok := st.services[name]
	if !ok {
		return nil, resp.Header.Revision, next, nil
	}
	return s.entry(name), resp.Header.Revision, next, nil
}
