package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// maxLeaseLookups bounds how often one heartbeat reads the instance's lease
// from etcd again because the lease it renewed was gone: each time, a
// re-registration of the same id has replaced it meanwhile.
const maxLeaseLookups = 8

// errNotPut is returned by putIf when its conditions fail.
var errNotPut = errors.New("not put: the conditions failed")

// heartbeat serves PUT /v1/services/{name}/instances/{id}/heartbeat: it
// renews the instance's lease, found in the index (or, for an instance the
// index has not seen yet, read from etcd), on the shared keep-alive stream.
// It answers 404 when the instance is gone: the client must register
// again. A heartbeat racing a re-registration of the same id renews the
// lease the instance is on now, never answering 404 for a lease the
// re-registration replaced. An instance whose lease etcd let expire while
// it could not answer the instance's heartbeats (a frozen etcd) is put back
// under a new lease, with the same id and record and so the same VIP, and
// the heartbeat answered 200.
func (r *Registrar) heartbeat(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	now := time.Now()
	ttl, cached, err := r.renewInstance(req.Context(), name, id, now)
	if err != nil || ttl <= 0 {
		// Not renewed: the heartbeat still counts as the client's, for
		// putting the instance back (a renewal notes it itself).
		r.seen.heard(name, id, now)
	}
	if err == nil && ttl <= 0 {
		ttl, err = r.revive(req.Context(), name, id, now)
	}
	if err != nil {
		r.metrics.heartbeats.WithLabelValues("failed").Inc()
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusServiceUnavailable {
			_, in := r.indexed(name, id)
			r.seen.missed(name, id, in, now)
		}
		return err
	}
	if ttl <= 0 {
		r.seen.forget(name, id)
		r.metrics.heartbeats.WithLabelValues("expired").Inc()
		return errNotFound("instance %s of service %s is not registered (expired or deregistered): register again", id, name)
	}
	if cached {
		r.metrics.heartbeats.WithLabelValues("cached").Inc()
	} else {
		r.metrics.heartbeats.WithLabelValues("ok").Inc()
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{ID: id, TTL: api.Duration(time.Duration(ttl) * time.Second)})
	return nil
}

// renewInstance renews the lease of instance name/id: first the one the
// index knows, then, while the lease renewed is gone, the one etcd holds
// the instance on now. It returns the TTL in seconds, <= 0 when the
// instance does not exist.
func (r *Registrar) renewInstance(ctx context.Context, name, id string, now time.Time) (ttl int64, cached bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	lease, in := r.indexed(name, id)
	for range maxLeaseLookups {
		if lease != 0 {
			if ttl, cached, err = r.renewLease(ctx, lease); err != nil || ttl > 0 {
				if ttl > 0 {
					r.seen.renewed(name, id, in, time.Duration(ttl)*time.Second, now)
				}
				return ttl, cached, err
			}
		}
		// Gone, or not in the index: which lease is the instance on now?
		stored, err := r.storedLease(ctx, name, id)
		if err != nil || stored == 0 || stored == lease {
			return 0, false, err
		}
		lease, in = stored, nil
	}
	return 0, false, &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
		msg: fmt.Sprintf("instance %s of service %s was registered again %d times during one heartbeat; try again", id, name, maxLeaseLookups)}
}

// revive puts instance name/id back under a new lease when its lease was
// lost while etcd could not answer its heartbeats (see seenInstances), and
// only if the instance key is still absent and its service still exists
// (deleted meanwhile, it stays deleted). It returns the new lease's TTL in
// seconds, or 0 when the instance is not to be put back: then the
// heartbeat answers 404 and the client registers again, where the limits
// apply. Only etcd's unavailability is an error.
func (r *Registrar) revive(ctx context.Context, name, id string, now time.Time) (int64, error) {
	in, ttl, ok := r.seen.revivable(name, id)
	if !ok {
		// Not to be put back by this heartbeat; but reviveLost, or a
		// registration, may have put it back since this heartbeat found it
		// gone: renew what is there now.
		secs, _, err := r.renewInstance(ctx, name, id, now)
		return secs, err
	}
	absent := clientv3.Compare(clientv3.CreateRevision(r.ks.InstanceKey(name, id)), "=", 0)
	res, err := r.putIf(ctx, in, nil, ttl, []clientv3.Cmp{absent})
	if errors.Is(err, errNotPut) {
		// Registered again meanwhile, or its service changed: renew what
		// is there now.
		secs, _, err := r.renewInstance(ctx, name, id, now)
		return secs, err
	}
	var he *httpError
	if errors.As(err, &he) && he.status != http.StatusServiceUnavailable {
		r.seen.forget(name, id)
		r.log.Warn("instance etcd let expire not put back", "service", name, "id", id, "err", err)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	r.metrics.revived.Inc()
	r.seen.renewed(name, id, in, ttl, now)
	r.log.Warn("instance put back under a new lease: etcd let its lease expire while it could not answer its heartbeats",
		"service", name, "id", id, "vip", res.service.VIP, "lease", fmt.Sprintf("%x", res.lease))
	return int64(ttl / time.Second), nil
}

// reviveLost puts back, each time the index changes, the instances that
// etcd let expire while it could not answer their heartbeats (see
// seenInstances), without waiting for their next heartbeat: after a frozen
// etcd resumes, they are gone from DNS and the proxies only for as long as
// this takes. It returns when ctx ends.
func (r *Registrar) reviveLost(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.ix.Snapshot().Stale():
		}
		lost := r.seen.lost(r.ix.Snapshot())
		for _, in := range lost {
			rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
			if _, err := r.revive(rctx, in.Service, in.ID, time.Now()); err != nil {
				r.log.Warn("putting back an instance etcd let expire failed; its next heartbeat tries again", "service", in.Service, "id", in.ID, "err", err)
			}
			cancel()
		}
		if len(lost) > 0 {
			// At most one pass every 100ms: a busy index changes far more
			// often, and a put that fails would only fail again.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// indexed returns the lease and record of instance id of service name as
// the index knows them.
func (r *Registrar) indexed(name, id string) (int64, *catalog.Instance) {
	e, ok := r.ix.Snapshot().Service(name)
	if !ok {
		return 0, nil
	}
	in, ok := e.Instance(id)
	if !ok || in.Lease == 0 {
		return 0, nil
	}
	return in.Lease, in
}

// indexedLease returns the lease of instance id of service name as the
// index knows it.
func (r *Registrar) indexedLease(name, id string) (int64, bool) {
	lease, _ := r.indexed(name, id)
	return lease, lease != 0
}

// storedLease reads the lease of instance id of service name from etcd; 0
// when the instance does not exist.
func (r *Registrar) storedLease(ctx context.Context, name, id string) (int64, error) {
	// Not WithKeysOnly: etcd 3.7 answers keys-only ranges from its index,
	// without the lease.
	resp, err := r.cfg.Client.Get(ctx, r.ks.InstanceKey(name, id))
	if err != nil {
		return 0, etcdUnavailable("read instance", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].Lease, nil
}

// renewLease renews lease; a zero lease (no instance) reads as expired.
func (r *Registrar) renewLease(ctx context.Context, lease int64) (int64, bool, error) {
	if lease == 0 {
		return 0, false, nil
	}
	ttl, cached, err := r.renewer.renew(ctx, lease)
	if err != nil {
		return 0, false, etcdUnavailable("renew lease", err)
	}
	return ttl, cached, nil
}
