package registrar

import (
	"context"
	"net/http"
	"time"

	"github.com/netsel/netsel/registrar/api"
)

// heartbeat serves PUT /v1/services/{name}/instances/{id}/heartbeat: it
// renews the instance's lease, found in the index (or, for an instance the
// index has not seen yet, read from etcd), on the shared keep-alive stream.
// It answers 404 when the instance or its lease is gone: the client must
// register again.
func (r *Registrar) heartbeat(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
	defer cancel()

	lease, fromIndex := r.indexedLease(name, id)
	if !fromIndex {
		var err error
		if lease, err = r.storedLease(ctx, name, id); err != nil {
			r.metrics.heartbeats.WithLabelValues("failed").Inc()
			return err
		}
	}
	ttl, cached, err := r.renewLease(ctx, lease)
	if err != nil {
		return err
	}
	if ttl <= 0 && fromIndex {
		// The index may hold an older registration's lease: ask etcd.
		stored, err := r.storedLease(ctx, name, id)
		if err != nil {
			r.metrics.heartbeats.WithLabelValues("failed").Inc()
			return err
		}
		if stored != 0 && stored != lease {
			if ttl, cached, err = r.renewLease(ctx, stored); err != nil {
				return err
			}
		}
	}
	if ttl <= 0 {
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

// indexedLease returns the lease of instance id of service name as the
// index knows it.
func (r *Registrar) indexedLease(name, id string) (int64, bool) {
	e, ok := r.ix.Snapshot().Service(name)
	if !ok {
		return 0, false
	}
	in, ok := e.Instance(id)
	if !ok || in.Lease == 0 {
		return 0, false
	}
	return in.Lease, true
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
		r.metrics.heartbeats.WithLabelValues("failed").Inc()
		return 0, false, etcdUnavailable("renew lease", err)
	}
	return ttl, cached, nil
}
