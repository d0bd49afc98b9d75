package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ListReaders reads the key of every live reader (see Reader), sorted by
// ID, and the revision read at. Keys whose value does not decode, names
// another reader than the key, or that have no lease (a live reader's key
// has one) are passed to onSkip (when not nil) and left out. A reader's
// Connections are cut to the MaxReportedConnections busiest.
func ListReaders(ctx context.Context, kv clientv3.KV, ks Keyspace, onSkip func(key string, err error)) ([]*Reader, int64, error) {
	resp, err := kv.Get(ctx, ks.ReadersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", ks.ReadersPrefix(), err)
	}
	set := readerSet{ks: ks, m: map[string]*Reader{}, onSkip: onSkip}
	for _, kv := range resp.Kvs {
		set.apply(kv, false)
	}
	return set.sorted(), resp.Header.Revision, nil
}

// WaitReaders lists the live readers, then watches their keys from the
// revision listed, and calls done with the live readers (sorted by ID)
// after the list and after every change, until done returns true or ctx
// ends. A reader whose key goes (it stopped, or its lease expired) leaves
// the set; one that starts joins it. It returns the readers done saw last,
// and ctx's error when ctx ended first. When the watch is compacted or cut
// it lists again.
func WaitReaders(ctx context.Context, c *clientv3.Client, ks Keyspace, done func([]*Reader) bool, onSkip func(key string, err error)) ([]*Reader, error) {
	backoff := 50 * time.Millisecond
	var last []*Reader
	for {
		readers, rev, err := ListReaders(ctx, c, ks, onSkip)
		if err == nil {
			last = readers
			if done(readers) {
				return readers, nil
			}
			set := readerSet{ks: ks, m: map[string]*Reader{}, onSkip: onSkip}
			for _, r := range readers {
				set.m[r.ID] = r
			}
			var ok bool
			last, ok, err = set.watch(ctx, c, rev, done)
			if ok {
				return last, nil
			}
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(backoff):
		}
		if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
			backoff = min(2*backoff, time.Second)
		}
	}
}

// Confirms reports whether r has applied revision rev and, when conn is
// not empty, has no open connection to the instance conn names (see
// ConnectionKey).
func (r *Reader) Confirms(rev int64, conn string) bool {
	return r.Revision >= rev && (conn == "" || r.Connections[conn] <= 0)
}

// readerSet is the live readers, folded from a list and watch events.
type readerSet struct {
	ks     Keyspace
	m      map[string]*Reader
	onSkip func(key string, err error)
}

// apply folds one key's put or delete into the set.
func (s *readerSet) apply(kv *mvccpb.KeyValue, deleted bool) {
	key := string(kv.Key)
	id, ok := strings.CutPrefix(key, s.ks.ReadersPrefix())
	if !ok {
		return
	}
	delete(s.m, id)
	if deleted {
		return
	}
	r, err := DecodeReader(kv.Value)
	switch {
	case err != nil:
	case r.ID != id:
		err = errNameMismatch
	case kv.Lease == 0:
		// A reader's key lives under its lease; one with none would hold
		// every drain to its timeout long after its writer is gone.
		err = errNoLease
	}
	if err != nil {
		if s.onSkip != nil {
			s.onSkip(key, err)
		}
		return
	}
	r.Lease = kv.Lease
	s.m[id] = r
}

func (s *readerSet) sorted() []*Reader {
	out := make([]*Reader, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Reader) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// watch follows the readers' keys from revision rev+1, calling done after
// each change. It returns the readers last seen and whether done said
// true; otherwise the watch ended (ctx, compaction, a cut stream) and err
// says why when it was not ctx.
func (s *readerSet) watch(ctx context.Context, c *clientv3.Client, rev int64, done func([]*Reader) bool) ([]*Reader, bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	last := s.sorted()
	wch := c.Watch(wctx, s.ks.ReadersPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return last, false, fmt.Errorf("watch readers: %w", err)
		}
		if len(resp.Events) == 0 {
			continue
		}
		for _, ev := range resp.Events {
			s.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete)
		}
		last = s.sorted()
		if done(last) {
			return last, true, nil
		}
	}
	return last, false, errors.New("watch readers: stream closed")
}
