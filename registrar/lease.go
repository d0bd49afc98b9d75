package registrar

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// grantAttempts bounds the lease ids a grant tries when etcd says one is
// taken.
const grantAttempts = 3

// grant creates a lease of ttl. The registrar picks the lease's id itself,
// so that a grant whose answer is lost or an error — etcd applies a grant
// that crosses its space quota and then reports "no space" — still names
// the lease to revoke: the reaper revokes it in the background.
func (r *Registrar) grant(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	var err error
	for range grantAttempts {
		id := newLeaseID(time.Now())
		// Wait for a connection, as clientv3 does, rather than fail at once
		// while etcd is away: each failed grant leaves work for the reaper.
		_, err = r.leases.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: int64(ttl / time.Second), ID: int64(id)}, grpc.WaitForReady(true))
		if err == nil {
			return id, nil
		}
		if err = rpctypes.Error(err); errors.Is(err, rpctypes.ErrLeaseExist) {
			continue
		}
		if !permanentEtcdError(err) {
			r.reaper.add(id, "", ttl, 0)
		}
		break
	}
	return 0, etcdUnavailable("grant lease", err)
}

// revoke revokes lease with a fresh, short context: it runs on failure
// paths, after the request's own context may have ended. A lease etcd does
// not revoke now is handed to the reaper, which tries again in the
// background until the lease has expired by itself (ttl from now; zero
// means MaxTTL).
func (r *Registrar) revoke(lease clientv3.LeaseID, ttl time.Duration, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(r.cfg.EtcdTimeout, 2*time.Second))
	defer cancel()
	r.renewer.forget(int64(lease))
	if _, err := r.cfg.Client.Revoke(ctx, lease); err != nil && !isLeaseNotFound(err) {
		r.log.Warn("revoking lease failed; revoking it in the background", "lease", fmt.Sprintf("%x", lease), "why", why, "err", err)
		r.reaper.add(lease, "", ttl, 0)
	}
}

// outcome is what reading back a write whose answer was an error found.
type outcome int

const (
	notWritten outcome = iota // the key does not hold the write's lease
	written                   // the key holds the write's lease: it committed
	unknown                   // etcd did not answer the read in time
)

func (o outcome) String() string {
	return [...]string{"not_written", "written", "unknown"}[o]
}

// readBack reads key to learn whether a write that put it under lease
// committed although etcd answered an error: etcd applies a transaction
// that crosses its space quota and then reports "no space", and a timeout
// or a cut connection says nothing either way. With lease 0 it asks
// whether key was deleted: written means the key is absent. It retries for
// up to EtcdTimeout within ctx, and returns the revision it read at.
func (r *Registrar) readBack(ctx context.Context, key string, lease clientv3.LeaseID) (outcome, int64) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		resp, err := r.cfg.Client.Get(ctx, key)
		if err == nil {
			holds := len(resp.Kvs) > 0 && resp.Kvs[0].Lease == int64(lease)
			if lease == 0 {
				holds = len(resp.Kvs) == 0
			}
			if !holds {
				return notWritten, resp.Header.Revision
			}
			if lease != 0 {
				if err := r.reaper.revokeReplaced(ctx, key, resp.Kvs[0]); err != nil {
					// The reaper tries again: the key holds lease.
					r.reaper.add(lease, key, 0, 0)
				}
			}
			return written, resp.Header.Revision
		}
		select {
		case <-ctx.Done():
			return unknown, 0
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// settled reports whether err says for sure whether a write was applied:
// etcd answered it after applying it or refusing it (no space, permission
// denied, a bad request), rather than the answer being lost. A write whose
// error is not settled may still be in flight in etcd after a read back.
func settled(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || permanentEtcdError(err)
}

// newLeaseID returns a lease ID for a grant at now: the milliseconds since
// the epoch above 20 random bits. IDs grow with time, so etcd's lease
// bucket takes them as appends, as it does its own sequential IDs; random
// 63-bit IDs scatter its B+tree writes and cost registrations a quarter of
// their throughput. A collision is answered ErrLeaseExist and retried.
func newLeaseID(now time.Time) clientv3.LeaseID {
	return clientv3.LeaseID(now.UnixMilli()<<20 | rand.Int64N(1<<20))
}

// keepLeaseAlive renews lease every second until the returned stop is
// called or ctx ends, so that an instance outlives a wait that may take
// longer than its TTL (a drain). A renewal that fails is tried again the
// next second.
func (r *Registrar) keepLeaseAlive(ctx context.Context, lease int64) (stop func()) {
	if lease == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
				if ttl, _, err := r.renewLease(rctx, lease); err == nil && ttl <= 0 {
					rcancel()
					return // gone: nothing left to keep
				}
				rcancel()
			}
		}
	}()
	return func() { cancel(); <-done }
}
