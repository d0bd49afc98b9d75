package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Bounds of the reaper.
const (
	// maxReaps bounds the leases the reaper holds; past it, a lease is left
	// to expire by itself (after its TTL).
	maxReaps = 10000
	// reapEvery is how often the reaper tries the leases it holds.
	reapEvery = time.Second
	// inFlightFor is how long a write whose answer was lost may still be
	// applied by etcd: etcd's own request timeout (5s plus two election
	// timeouts) with room to spare. The reaper leaves the lease of such a
	// write alone that long before it reads its key again.
	inFlightFor = 10 * time.Second
)

// reaper revokes, in the background, leases that a request could not
// revoke itself: a revoke that failed, a grant whose answer was an error,
// and the lease of a registration whose outcome was unknown, which it
// revokes only once a read shows the instance key does not hold it. So a
// 503 leaves no lease behind for longer than etcd takes to come back. What
// it holds is bounded by maxReaps; each lease is dropped once it has
// expired by itself.
type reaper struct {
	cli     *clientv3.Client
	log     *slog.Logger
	metrics *metrics
	timeout time.Duration // of one etcd call
	maxTTL  time.Duration // the longest a lease of the registrar lives
	forget  func(lease int64)

	mu     sync.Mutex
	leases map[clientv3.LeaseID]reap
}

// reap is a lease to revoke.
type reap struct {
	key   string    // when set, keep the lease if key holds it
	after time.Time // not before
	until time.Time // the lease has expired by itself by then
}

func newReaper(cli *clientv3.Client, log *slog.Logger, m *metrics, timeout, maxTTL time.Duration, forget func(int64)) *reaper {
	return &reaper{cli: cli, log: log, metrics: m, timeout: timeout, maxTTL: maxTTL, forget: forget, leases: map[clientv3.LeaseID]reap{}}
}

// add hands lease, of ttl (zero: not known, at most MaxTTL), to the
// reaper. With key, the lease is revoked only if key does not hold it
// (unless the reaper holds it to revoke already without a key), and not
// before wait has passed.
func (rp *reaper) add(lease clientv3.LeaseID, key string, ttl, wait time.Duration) {
	if ttl <= 0 {
		ttl = rp.maxTTL
	}
	now := time.Now()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if old, ok := rp.leases[lease]; ok && old.key == "" {
		key = "" // to be revoked whatever key holds it already
	}
	if len(rp.leases) >= maxReaps {
		rp.metrics.reapDropped.Inc()
		return
	}
	rp.leases[lease] = reap{key: key, after: now.Add(wait), until: now.Add(ttl + time.Second)}
	rp.metrics.reapPending.Set(float64(len(rp.leases)))
}

// run tries the leases it holds every reapEvery until ctx ends.
func (rp *reaper) run(ctx context.Context) {
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rp.sweep(ctx)
		}
	}
}

// sweep tries every lease that is due, and stops at the first etcd failure
// (etcd is away: trying the others would only wait as long each).
func (rp *reaper) sweep(ctx context.Context) {
	now := time.Now()
	rp.mu.Lock()
	due := map[clientv3.LeaseID]reap{}
	for lease, rr := range rp.leases {
		switch {
		case now.After(rr.until):
			delete(rp.leases, lease)
		case now.After(rr.after):
			due[lease] = rr
		}
	}
	rp.metrics.reapPending.Set(float64(len(rp.leases)))
	rp.mu.Unlock()
	for lease, rr := range due {
		done, err := rp.try(ctx, lease, rr.key)
		if err != nil {
			rp.log.Debug("background revoke failed; trying again", "lease", fmt.Sprintf("%x", lease), "err", err)
			return
		}
		if done {
			rp.mu.Lock()
			delete(rp.leases, lease)
			rp.metrics.reapPending.Set(float64(len(rp.leases)))
			rp.mu.Unlock()
		}
	}
}

// try revokes lease unless key holds it; done says the lease needs nothing
// more.
func (rp *reaper) try(ctx context.Context, lease clientv3.LeaseID, key string) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, rp.timeout)
	defer cancel()
	if key != "" {
		resp, err := rp.cli.Get(ctx, key)
		if err != nil {
			return false, err
		}
		if len(resp.Kvs) > 0 && resp.Kvs[0].Lease == int64(lease) {
			// The registration committed: the lease is in use, and the one
			// it replaced holds nothing.
			if err := rp.revokeReplaced(ctx, key, resp.Kvs[0]); err != nil {
				return false, err
			}
			return true, nil
		}
	}
	rp.forget(int64(lease))
	if _, err := rp.cli.Revoke(ctx, lease); err != nil && !isLeaseNotFound(err) {
		return false, err
	}
	rp.metrics.reaped.Inc()
	return true, nil
}

// revokeReplaced revokes the lease of the version of key that kv, a write
// whose answer was lost, replaced: nobody else knows that lease, which now
// holds nothing. It reads that version at the revision before kv's (when
// that is compacted, the lease expires after its TTL).
func (rp *reaper) revokeReplaced(ctx context.Context, key string, kv *mvccpb.KeyValue) error {
	if kv.Version <= 1 {
		return nil // created by kv's write: nothing replaced
	}
	resp, err := rp.cli.Get(ctx, key, clientv3.WithRev(kv.ModRevision-1))
	if errors.Is(err, rpctypes.ErrCompacted) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	if old := clientv3.LeaseID(resp.Kvs[0].Lease); old != 0 && old != clientv3.LeaseID(kv.Lease) {
		rp.forget(int64(old))
		if _, err := rp.cli.Revoke(ctx, old); err != nil && !isLeaseNotFound(err) {
			rp.add(old, "", 0, 0)
		}
	}
	return nil
}
